package camrec

import (
	"io"
	"path/filepath"

	"github.com/passeur/passeur/image/builder"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
)

// SpecFile is camrec 8's release spec, relative to passeur's module root.
const SpecFile = "qemu/camrec/v8/release.json"

// BuildV8 builds camrec 8 with passeur's release builder into out, signed
// with the minisign key in keyFile: what the tests and the demo install.
// repoDir is passeur's module root, cache the download cache (the board's
// kernel package).
func BuildV8(repoDir, cache, out, keyFile string, log io.Writer) (*release.Manifest, error) {
	spec, err := builder.ReadSpec(filepath.Join(repoDir, SpecFile))
	if err != nil {
		return nil, err
	}
	sk, err := sign.LoadPrivateKey(keyFile, "")
	if err != nil {
		return nil, err
	}
	return builder.Run(spec, builder.Options{RepoDir: repoDir, Cache: cache, OutDir: out, Key: &sk, Log: log})
}
