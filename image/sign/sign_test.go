package sign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func keys(t *testing.T, password string) (pubPath, privPath string) {
	t.Helper()
	pub, priv, err := GenerateKey(password)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubPath, privPath = filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key")
	os.WriteFile(pubPath, pub, 0o644)
	os.WriteFile(privPath, priv, 0o600)
	return
}

func TestSignVerify(t *testing.T) {
	for _, password := range []string{"", "correct horse"} {
		pubPath, privPath := keys(t, password)
		sk, err := LoadPrivateKey(privPath, password)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := LoadPublicKey(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(`{"product":"camrec","version":"8.0.0"}`)
		sig := Sign(sk, data, "passeur release camrec 8.0.0")
		if !bytes.Equal(sig, Sign(sk, data, "passeur release camrec 8.0.0")) {
			t.Error("signing twice gave different bytes")
		}
		tc, err := Verify(pk, data, sig)
		if err != nil || tc != "passeur release camrec 8.0.0" {
			t.Errorf("Verify = %q, %v", tc, err)
		}
		for i := range data {
			bad := bytes.Clone(data)
			bad[i] ^= 0x01
			if _, err := Verify(pk, bad, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("byte %d flipped: Verify = %v, want ErrBadSignature", i, err)
			}
		}
		otherPub, _ := keys(t, "")
		other, _ := LoadPublicKey(otherPub)
		if _, err := Verify(other, data, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("another key: Verify = %v, want ErrBadSignature", err)
		}
	}
}

// TestMinisignCLI checks that Debian's minisign verifies what passeur
// signs, and rejects it once tampered.
func TestMinisignCLI(t *testing.T) {
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Skip("minisign CLI not installed (build.sh installs it)")
	}
	pubPath, privPath := keys(t, "")
	sk, _ := LoadPrivateKey(privPath, "")
	file := filepath.Join(t.TempDir(), "manifest.json")
	data := []byte("{\"product\":\"camrec\"}\n")
	os.WriteFile(file, data, 0o644)
	os.WriteFile(file+Ext, Sign(sk, data, "passeur test"), 0o644)
	if out, err := exec.Command("minisign", "-Vm", file, "-p", pubPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V rejects passeur's signature: %v\n%s", err, out)
	}
	os.WriteFile(file, []byte("{\"product\":\"camreC\"}\n"), 0o644)
	if out, err := exec.Command("minisign", "-Vm", file, "-p", pubPath).CombinedOutput(); err == nil {
		t.Fatalf("minisign -V accepts a tampered file:\n%s", out)
	}
	pk, _ := LoadPublicKey(pubPath)
	if _, err := VerifyFile(pk, file); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyFile of the tampered file = %v, want ErrBadSignature", err)
	}
}
