package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/builder"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/initramfs/inventory"
)

const releaseUsage = `usage: passeur release build|keygen|sign|verify|inspect [flags]

  build   -spec SPEC.json -out DIR [-key NAME.key] [-cache .cache]  build (and sign) a release
  (publishing into a repository: passeur repo publish)

  keygen  -out DIR/NAME [-password-file F]  write NAME.pub and NAME.key (minisign format)
  sign    -key NAME.key [-password-file F] MANIFEST    write MANIFEST.minisig
  verify  -pub NAME.pub MANIFEST            check the signature, the manifest and every artifact
  inspect MANIFEST                          print what the release holds`

func releaseCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(releaseUsage)
	}
	fs := flag.NewFlagSet("release "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "keygen: path of the key pair, without extension; build: output folder")
	key := fs.String("key", "", "sign, build: private key file")
	pub := fs.String("pub", "", "verify: public key file")
	passwordFile := fs.String("password-file", "", "file holding the private key's password (none: unencrypted key)")
	specPath := fs.String("spec", "", "build: the release spec")
	cache := fs.String("cache", ".cache", "build: download cache folder")
	src := fs.String("src", ".", "build: passeur's source tree")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	password := ""
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			return err
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	manifest := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("release %s: name one manifest", args[0])
		}
		return fs.Arg(0), nil
	}
	switch args[0] {
	case "build":
		if *specPath == "" || *out == "" {
			return errors.New("release build: -spec and -out are required")
		}
		return buildRelease(*specPath, *out, *key, password, *cache, *src, stdout, stderr)
	case "keygen":
		if *out == "" {
			return errors.New("release keygen: -out is required")
		}
		return keygen(*out, password, stdout)
	case "sign":
		path, err := manifest()
		if err != nil {
			return err
		}
		return signManifest(path, *key, password, stdout)
	case "verify":
		path, err := manifest()
		if err != nil {
			return err
		}
		return verifyRelease(path, *pub, stdout)
	case "inspect":
		path, err := manifest()
		if err != nil {
			return err
		}
		_, m, err := readManifest(path)
		if err != nil {
			return err
		}
		return inspect(m, stdout)
	}
	return fmt.Errorf("release: unknown command %q\n%s", args[0], releaseUsage)
}

// buildRelease builds a release from a spec, signed when a key is given.
func buildRelease(specPath, out, keyPath, password, cache, src string, stdout, stderr io.Writer) error {
	spec, err := builder.ReadSpec(specPath)
	if err != nil {
		return err
	}
	o := builder.Options{Cache: cache, OutDir: out, Log: stderr}
	if keyPath != "" {
		sk, err := sign.LoadPrivateKey(keyPath, password)
		if err != nil {
			return err
		}
		o.Key = &sk
	}
	if o.RepoDir, err = filepath.Abs(src); err != nil {
		return err
	}
	m, err := builder.Run(spec, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "built %s %s into %s\n", m.Product, m.Version, out)
	return inspect(m, stdout)
}

func keygen(out, password string, stdout io.Writer) error {
	pub, priv, err := sign.GenerateKey(password)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{out + ".key", priv, 0o600}, {out + ".pub", pub, 0o644}} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("release keygen: %w (keys are never overwritten)", err)
		}
		if _, err := fh.Write(f.data); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s.key and %s.pub\n", out, out)
	return nil
}

// signManifest signs a manifest that parses and checks: a broken manifest
// is never signed.
func signManifest(path, keyPath, password string, stdout io.Writer) error {
	if keyPath == "" {
		return errors.New("release sign: -key is required")
	}
	data, m, err := readManifest(path)
	if err != nil {
		return err
	}
	sk, err := sign.LoadPrivateKey(keyPath, password)
	if err != nil {
		return err
	}
	sig := sign.Sign(sk, data, fmt.Sprintf("passeur release %s %s %s", m.Product, m.Version, m.Arch))
	if err := atomicfile.WriteFile(path+sign.Ext, sig, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s %s: %s\n", m.Product, m.Version, path+sign.Ext)
	return nil
}

// verifyRelease checks, in this order, the signature, the manifest, and the
// artifacts beside it; it says which failed.
func verifyRelease(path, pubPath string, stdout io.Writer) error {
	if pubPath == "" {
		return errors.New("release verify: -pub is required")
	}
	pk, err := sign.LoadPublicKey(pubPath)
	if err != nil {
		return err
	}
	data, err := sign.VerifyFile(pk, path)
	if err != nil {
		return err
	}
	m, err := release.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := m.VerifyArtifacts(filepath.Dir(path)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: signature, manifest and %d artifacts verified\n", m.Product, m.Version, len(m.Artifacts))
	return nil
}

func inspect(m *release.Manifest, w io.Writer) error {
	fmt.Fprintf(w, "product       %s\nversion       %s\narch          %s\n", m.Product, m.Version, m.Arch)
	if m.MigrateFrom != nil {
		fmt.Fprintf(w, "migrates from %s\n", m.MigrateFrom)
	} else {
		fmt.Fprintf(w, "migrates from nothing (fresh installs only)\n")
	}
	fmt.Fprintf(w, "config        %s\nindex         %s\n", strings.Join(m.Config, " "), strings.Join(m.Index, " "))
	fmt.Fprintf(w, "data volumes  fstab %s, labels %s\n", strings.Join(m.DataVolumes.FstabMountpoints, " "), strings.Join(m.DataVolumes.LabelPatterns, " "))
	fmt.Fprintf(w, "media needs   %s free\nsmallest disk %s\n\n", inventory.HumanSize(m.MinMediaFree), inventory.HumanSize(m.Layout.MinDiskSize()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPARTITION\tTYPE\tSIZE\tROLE\tFROM")
	for i, p := range m.Layout.Partitions {
		from := p.Artifact
		switch p.Role {
		case release.RoleEmpty:
			from = "new " + p.Filesystem
		case release.RoleKeep:
			from = "old partition labelled " + p.KeepLabel
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, p.Name, p.Type, p.Size, p.Role, from)
	}
	fmt.Fprintln(tw, "\nARTIFACT\tFILE\tSIZE\tSTORED\tRATIO\t")
	for _, a := range m.Artifacts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t\n", a.Name, a.File, inventory.HumanSize(a.Size), inventory.HumanSize(a.StoredSize), float64(a.Size)/float64(a.StoredSize))
	}
	return tw.Flush()
}

// readManifest reads and checks a manifest file, unverified: for signing
// and inspecting only, never for acting on it.
func readManifest(path string) ([]byte, *release.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := release.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, m, nil
}
