package certs

import (
	"fmt"
	"os"
	"path/filepath"
)

// File modes used by Write.
const (
	DirMode  os.FileMode = 0o700
	CertMode os.FileMode = 0o644
	KeyMode  os.FileMode = 0o600
)

// Write stores the CA certificate and the key pair in dir as ca.crt, tls.crt
// and tls.key, creating dir (mode 0700) if needed. Each file is written to a
// temporary file in dir and renamed into place, so a server watching dir (as
// controller-runtime's certwatcher does) never reads a partly written file.
// The key is renamed before the certificate: a watcher woken by the new
// certificate finds the matching key already in place.
func Write(dir string, ca *CA, kp *KeyPair) error {
	if dir == "" {
		return fmt.Errorf("certificate directory must not be empty")
	}
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("creating certificate directory: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAFile, ca.CertPEM, CertMode},
		{TLSKeyFile, kp.KeyPEM, KeyMode},
		{TLSCertFile, kp.CertPEM, CertMode},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory and a rename, with the final mode set before the rename.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
