package agent

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
)

// dirVolumes reads each device's files from a folder.
type dirVolumes map[string]string

func (d dirVolumes) Files(dev, _ string) (fs.FS, error) {
	if p, ok := d[dev]; ok {
		return os.DirFS(p), nil
	}
	return nil, fs.ErrNotExist
}
func (dirVolumes) Close() error { return nil }

// TestRememberedOnState: what a box verified, kept on its system's state
// (rememberOnState's folder), makes a box booted from a new key refuse the
// metadata of before, as the old key would; a forged or older file there
// is passed over.
func TestRememberedOnState(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	old := t.TempDir()
	os.CopyFS(old, os.DirFS(filepath.Join(v.Dir, repo.MetadataDir)))
	v.Edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
	open := func(state string) error {
		_, err := repoclient.Open(context.Background(), repoclient.Options{URL: v.Srv.URL, Root: v.Root, State: state,
			Now: func() time.Time { return v.Now }, Fetch: fetch.Options{Attempts: 1}})
		return err
	}
	// The box migrated with the newer metadata: its state remembers it.
	seenState := t.TempDir()
	if err := open(seenState); err != nil {
		t.Fatal(err)
	}
	stateFS := t.TempDir()
	if _, err := saveRepoState(seenState, filepath.Join(stateFS, medialayout.RepoStateDir)); err != nil {
		t.Fatal(err)
	}
	// A forged timestamp on a data volume is passed over: one that does
	// not parse, and one that claims a version far ahead, its signature
	// left as it was.
	forged := t.TempDir()
	os.MkdirAll(filepath.Join(forged, medialayout.RepoStateDir, "metadata"), 0o755)
	os.WriteFile(filepath.Join(forged, medialayout.RepoStateDir, "metadata", "timestamp.json"), []byte(`{"signed": {"version": "x"}}`), 0o644)
	ahead := t.TempDir()
	os.MkdirAll(filepath.Join(ahead, medialayout.RepoStateDir, "metadata"), 0o755)
	genuine, _ := os.ReadFile(filepath.Join(seenState, "metadata", "timestamp.json"))
	forgedAhead := bytes.Replace(genuine, []byte(`"version": `), []byte(`"version": 9999`), 1)
	if bytes.Equal(forgedAhead, genuine) {
		t.Fatalf("no version to forge in %.200s", genuine)
	}
	os.WriteFile(filepath.Join(ahead, medialayout.RepoStateDir, "metadata", "timestamp.json"), forgedAhead, 0o644)

	// The mirror replays the metadata of before.
	data, _ := os.ReadFile(filepath.Join(old, "timestamp.json"))
	os.WriteFile(filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json"), data, 0o644)

	var out bytes.Buffer
	a := &Agent{Console: &out, Events: event.NewEmitter(&out), Log: bufLog{&out}}
	disks := []inventory.Disk{
		{Path: "/dev/vda", Partitions: []inventory.Partition{{Path: "/dev/vda3", FS: &fsprobe.FS{Type: "ext4", Label: "state"}}}},
		{Path: "/dev/vdb", FS: &fsprobe.FS{Type: "xfs"}},
		{Path: "/dev/vdc", FS: &fsprobe.FS{Type: "ext4"}},
		{Path: "/dev/sda", Removable: true, Partitions: []inventory.Partition{{Path: "/dev/sda1", FS: &fsprobe.FS{Type: "vfat"}}}},
	}
	reader := dirVolumes{"/dev/vda3": stateFS, "/dev/vdb": forged, "/dev/vdc": ahead}
	newKey := t.TempDir()
	a.rememberedOnDisks(disks, "/dev/sda1", reader, v.Root, newKey)
	if got, _ := os.ReadFile(filepath.Join(newKey, "metadata", "timestamp.json")); !bytes.Equal(got, genuine) {
		t.Errorf("the new key's timestamp is not the one the state verified:\n%.300s", got)
	}
	// The time the state remembers is taken too, verified.
	if _, err := os.Stat(filepath.Join(newKey, repoclient.SeenFile)); err != nil {
		t.Errorf("the state's seen time was not taken: %v", err)
	}
	if err := open(newKey); !errors.Is(err, repoclient.ErrRollback) {
		t.Errorf("a new key on a box whose state remembers newer: %v, want %v", err, repoclient.ErrRollback)
	}
	if !strings.Contains(out.String(), "remembers newer than the media") {
		t.Errorf("log: %s", out.String())
	}
	// Without what the state remembers, the replay is taken: the check
	// above is what refused it.
	if err := open(t.TempDir()); err != nil {
		t.Errorf("a new key, nothing remembered: %v", err)
	}
	// What the media remembers newer is kept over an older disk's.
	older := t.TempDir()
	os.MkdirAll(filepath.Join(older, medialayout.RepoStateDir, "metadata"), 0o755)
	os.WriteFile(filepath.Join(older, medialayout.RepoStateDir, "metadata", "timestamp.json"), data, 0o644)
	out.Reset()
	a.rememberedOnDisks(disks[:1], "/dev/sda1", dirVolumes{"/dev/vda3": older}, v.Root, seenState)
	if got, _ := os.ReadFile(filepath.Join(seenState, "metadata", "timestamp.json")); !bytes.Equal(got, genuine) || strings.Contains(out.String(), "remembers newer") {
		t.Errorf("an older timestamp taken over a newer one: %s", out.String())
	}
}
