package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/initramfs/fetch"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/progress"
	"github.com/passeur/passeur/initramfs/roles"
)

// downloadEvent is the payload of the "download" event.
type downloadEvent struct {
	Repo     string  `json:"repo"`
	Release  string  `json:"release"` // folder on the media
	Files    int     `json:"files"`
	Bytes    int64   `json:"bytes"`
	Attempts int     `json:"attempts"`
	Resumed  int     `json:"resumed"`
	Seconds  float64 `json:"seconds"`
}

// obtain brings the release passeur.release= names (default: the tag
// "stable") from the repository passeur.repo= onto the media, in
// releases/<product>-<version>/, unless the media holds it already. The
// index's and the manifest's signatures are checked before anything else
// is fetched; an artifact cut off resumes where it stopped (HTTP Range),
// in this run or the next. A tag sets a.want to the version it names.
func (a *Agent) obtain(disks []inventory.Disk) error {
	want := a.Config.Release
	if a.Config.Repo == "" {
		return nil
	}
	if want == "" {
		want = "stable"
	}
	reader := &roles.MountReader{Dir: "/run/passeur/obtain"}
	defer reader.Close()
	dev, files, err := media.Find(disks, reader)
	if err != nil {
		return err
	}
	trusted, err := media.LoadTrusted("/" + medialayout.TrustedDir)
	if err != nil {
		return err
	}
	if a.want != "" {
		rels, _ := media.Releases(files, trusted)
		for _, r := range rels {
			if r.Manifest.Version.String() == a.want {
				a.Log.Printf("release %s is on the media: nothing to download", r.Dir)
				return nil
			}
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	o := a.fetchOptions()
	tmp := "/run/passeur/repo"
	os.MkdirAll(tmp, 0o755)
	base := a.Config.Repo
	var got [2][]byte
	for i, name := range []string{repo.IndexFile, repo.IndexFile + sign.Ext} {
		p := filepath.Join(tmp, name)
		os.Remove(p)
		if _, err := fetch.File(ctx, base+"/"+name, p, o); err != nil {
			return fmt.Errorf("repository %s: %w", base, err)
		}
		if got[i], err = os.ReadFile(p); err != nil {
			return err
		}
	}
	ix, err := repo.Verify(got[0], got[1], trusted)
	if err != nil {
		return fmt.Errorf("repository %s: %w", base, err)
	}
	product, err := onlyProduct(ix)
	if err != nil {
		return fmt.Errorf("repository %s: %w", base, err)
	}
	ver, err := ix.Resolve(product, want)
	if err != nil {
		return fmt.Errorf("repository %s: %w", base, err)
	}
	a.want = ver
	rel := path.Join(medialayout.ReleasesDir, product+"-"+ver)
	if m, _, err := media.Verify(files, rel, trusted); err == nil && m.VerifyArtifactsStored(files, rel) == nil {
		a.Log.Printf("%s %s (%s) is on the media: nothing to download", product, ver, want)
		return nil
	}
	a.Log.Printf("downloading %s %s (%s) from %s onto the media", product, ver, want, base)
	if err := reader.Release(dev); err != nil {
		return err
	}
	r := &run{mediaDev: dev}
	if err := a.mountMediaDev(r); err != nil {
		return err
	}
	defer a.closeRun(r)
	dst := filepath.Join(r.media, rel)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return a.mediaErr(r, err)
	}
	url := base + "/" + product + "/" + ver
	ev := downloadEvent{Repo: base, Release: rel}
	get := func(name string, size int64) error {
		o := o
		o.Size = size
		if size > 0 {
			p := &progress.Progress{Label: "download " + name, Out: a.Console, Event: func(r progress.Report) { a.Events.Emit("progress", r) }}
			p.Start(size)
			var last int64
			o.Progress = func(done int64) { p.Add(done - last); last = done }
			defer p.Finish()
		}
		res, err := fetch.File(ctx, url+"/"+name, filepath.Join(dst, name), o)
		ev.Files++
		ev.Bytes += res.Bytes
		ev.Attempts += res.Attempts
		ev.Resumed += res.Resumed
		if err != nil {
			return a.mediaErr(r, fmt.Errorf("%s: %w", url+"/"+name, err))
		}
		return nil
	}
	for _, name := range []string{"manifest.json", "manifest.json" + sign.Ext} {
		os.Remove(filepath.Join(dst, name)) // small: always fetched anew
		if err := get(name, 0); err != nil {
			return err
		}
	}
	m, _, err := media.Verify(os.DirFS(r.media), rel, trusted)
	if err != nil {
		return fmt.Errorf("release %s %s from %s: %w", product, ver, base, err)
	}
	for _, art := range m.Artifacts {
		if art.VerifyStored(os.DirFS(r.media), rel) == nil {
			continue // fetched by an earlier run
		}
		os.Remove(filepath.Join(dst, art.File)) // a whole file that does not verify is fetched anew
		if err := get(art.File, art.StoredSize); err != nil {
			return err
		}
	}
	ev.Seconds = seconds(time.Since(start))
	a.Log.Printf("downloaded %s: %d files, %d bytes, %d requests (%d resumed) in %.1f s", rel, ev.Files, ev.Bytes, ev.Attempts, ev.Resumed, ev.Seconds)
	a.Events.Emit("download", ev)
	return a.closeRun(r)
}

// fetchOptions are the HTTP client and retry policy of the downloads.
func (a *Agent) fetchOptions() fetch.Options {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
	return fetch.Options{Client: &http.Client{Transport: tr}, Attempts: 6, Backoff: time.Second, Stall: 30 * time.Second,
		Log: func(format string, args ...any) { a.Log.Printf("download: "+format, args...) }}
}

// onlyProduct is the repository's product when it holds one.
func onlyProduct(ix *repo.Index) (string, error) {
	var names []string
	for n := range ix.Products {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) != 1 {
		return "", fmt.Errorf("it holds %d products (%s): passeur serves repositories of one product", len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}
