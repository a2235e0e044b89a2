package newsys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddRescue(t *testing.T) {
	esp := t.TempDir()
	if err := AddRescue(esp, []byte("k"), []byte("i"), "console=ttyS0"); !errors.Is(err, ErrNoLoader) {
		t.Errorf("no loader/entries: %v, want ErrNoLoader", err)
	}
	if ents, _ := os.ReadDir(esp); len(ents) != 0 {
		t.Errorf("a refused AddRescue wrote %v", ents)
	}
	os.MkdirAll(filepath.Join(esp, "loader/entries"), 0o755)
	os.WriteFile(filepath.Join(esp, "loader/entries/camrec.conf"), []byte("linux /camrec/vmlinuz\n"), 0o644)
	if err := AddRescue(esp, []byte("k"), []byte("i"), "a\nb"); err == nil {
		t.Error("a command line with a line break was taken")
	}
	if err := AddRescue(esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0 passeur.staged=x/passeur-staging"); err != nil {
		t.Fatal(err)
	}
	entry, _ := os.ReadFile(filepath.Join(esp, "loader/entries", RescueEntry))
	for _, line := range []string{"linux /passeur/vmlinuz", "initrd /passeur/initramfs.cpio.zst", "options console=ttyS0 passeur.staged=x/passeur-staging"} {
		if !strings.Contains(string(entry), line+"\n") {
			t.Errorf("the entry lacks %q:\n%s", line, entry)
		}
	}
	if k, _ := os.ReadFile(filepath.Join(esp, "passeur/vmlinuz")); string(k) != "kernel" {
		t.Errorf("kernel %q", k)
	}
	if err := RemoveRescue(esp); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(esp, "loader/entries"))
	if _, err := os.Stat(filepath.Join(esp, RescueFolder)); len(ents) != 1 || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after RemoveRescue: entries %v, %s: %v", ents, RescueFolder, err)
	}
	if err := RemoveRescue(esp); err != nil {
		t.Errorf("removed twice: %v", err)
	}
}
