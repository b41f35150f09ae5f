// Package sign signs image digests with cosign and verifies them before a
// deployment, offline: a key pair instead of Sigstore's keyless flow, and no
// transparency log (Rekor cannot be reached from here). On GitHub the
// workflow signs keyless instead (.github/workflows/ci.yml).
package sign

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gotool"
)

// Cosign is the pinned cosign, built once from the module proxy.
var Cosign = gotool.Tool{
	Package: "github.com/sigstore/cosign/v2/cmd/cosign",
	Version: "v2.6.5",
	// The version stamp upstream's release build sets (cosign version).
	Ldflags: "-X sigs.k8s.io/release-utils/version.gitVersion=v2.6.5",
	About:   "several minutes",
}

// Keys is a cosign key pair and the password of its private key.
type Keys struct {
	Private, Public string // paths
	Password        string
}

// DefaultKeyDir holds the pipeline's own key pair, outside any checkout:
// the user's config directory, readable by the owner only.
func DefaultKeyDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find a directory for the signing key: %w", err)
	}
	return filepath.Join(dir, "scalable-app", "signing"), nil
}

// Signer runs cosign.
type Signer struct {
	Bin  string // cosign
	Run  *command.Runner
	Keys Keys
	// Keyless, when set, verifies Sigstore keyless signatures (the GitHub
	// workflow's) instead of the key pair's.
	Keyless *Identity
}

// Identity is who must have signed keylessly: the workflow's identity in
// its Fulcio certificate, and the OIDC issuer that vouched for it.
type Identity struct {
	SubjectRegexp string // e.g. ^https://github.com/OWNER/REPO/\.github/workflows/ci\.yml@refs/heads/main$
	Issuer        string // https://token.actions.githubusercontent.com
}

// Verifier says what a signature is checked against, for messages.
func (s Signer) Verifier() string {
	if s.Keyless != nil {
		return "keyless, " + s.Keyless.SubjectRegexp
	}
	return s.Keys.Public
}

// EnsureKeys returns the key pair in dir. A key there is used as it is,
// with the password in cosign.password beside it or else in
// COSIGN_PASSWORD; it is never replaced. An empty dir gets a new pair and
// a random password, in cosign.password (mode 0600).
func EnsureKeys(ctx context.Context, run *command.Runner, bin, dir string) (Keys, error) {
	k := Keys{Private: filepath.Join(dir, "cosign.key"), Public: filepath.Join(dir, "cosign.pub")}
	pwFile := filepath.Join(dir, "cosign.password")
	if _, err := os.Stat(k.Private); err == nil {
		if _, err := os.Stat(k.Public); err != nil {
			return Keys{}, fmt.Errorf("%s has cosign.key but no cosign.pub: %w", dir, err)
		}
		b, err := os.ReadFile(pwFile)
		switch {
		case err == nil:
			k.Password = strings.TrimSpace(string(b))
		case !errors.Is(err, os.ErrNotExist):
			return Keys{}, fmt.Errorf("read the signing key's password: %w", err)
		default:
			pw, ok := os.LookupEnv("COSIGN_PASSWORD")
			if !ok {
				return Keys{}, fmt.Errorf("%s holds a key and no cosign.password: set COSIGN_PASSWORD to its password", dir)
			}
			k.Password = pw
		}
		return k, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("create the signing key's directory: %w", err)
	}
	pw := make([]byte, 24)
	rand.Read(pw)
	k.Password = hex.EncodeToString(pw)
	// The password file first: a key never exists without it.
	if err := os.WriteFile(pwFile, []byte(k.Password+"\n"), 0o600); err != nil {
		return Keys{}, fmt.Errorf("keep the signing key's password: %w", err)
	}
	_, err := run.Exec(ctx, command.Cmd{
		What: "generate the pipeline's signing key pair", Name: bin,
		Args: []string{"generate-key-pair", "--output-key-prefix", filepath.Join(dir, "cosign")},
		Env:  []string{"COSIGN_PASSWORD=" + k.Password},
	})
	if err != nil {
		os.Remove(pwFile)
		return Keys{}, err
	}
	return k, nil
}

// offline are the flags that keep cosign off the network but for the
// registry, which speaks plain HTTP on loopback.
var offline = []string{"--allow-http-registry", "--allow-insecure-registry"}

// Sign signs ref (name@sha256:...) with the private key and pushes the
// signature next to it in its registry.
func (s Signer) Sign(ctx context.Context, ref string) error {
	if !strings.Contains(ref, "@sha256:") {
		return fmt.Errorf("sign %s: only a digest is signed, never a tag", ref)
	}
	args := append([]string{"sign", "--yes", "--key", s.Keys.Private, "--tlog-upload=false"}, offline...)
	_, err := s.Run.Exec(ctx, command.Cmd{
		What: "sign " + ref, Name: s.Bin, Args: append(args, ref),
		Env: []string{"COSIGN_PASSWORD=" + s.Keys.Password},
	})
	return err
}

// ErrNotSigned is a digest with no valid signature by the pipeline's key
// (or keyless identity).
var ErrNotSigned = errors.New("not signed by the pipeline's key")

// Verify checks that ref carries a signature by the public key. A digest
// unsigned, or signed by another key, is ErrNotSigned.
func (s Signer) Verify(ctx context.Context, ref string) error {
	var args []string
	if s.Keyless != nil {
		// Online: the certificate chain and the transparency log are checked.
		args = []string{"verify", "--certificate-identity-regexp", s.Keyless.SubjectRegexp, "--certificate-oidc-issuer", s.Keyless.Issuer, "--output", "json"}
	} else {
		// Without a trusted root of its own, cosign fetches Sigstore's from
		// its TUF repository on the internet, though a key needs none of it.
		root, err := writeNoServicesRoot()
		if err != nil {
			return err
		}
		defer os.Remove(root)
		args = append([]string{"verify", "--key", s.Keys.Public, "--insecure-ignore-tlog=true", "--trusted-root", root, "--output", "json"}, offline...)
	}
	_, err := s.Run.Exec(ctx, command.Cmd{What: "verify the signature of " + ref, Name: s.Bin, Args: append(args, ref)})
	if err != nil {
		return fmt.Errorf("%s: %w (%s): %w", ref, ErrNotSigned, s.Verifier(), err)
	}
	return nil
}

// writeNoServicesRoot writes a Sigstore trusted root that trusts no
// service (no Fulcio, Rekor, CT log or timestamp authority): a signature
// then verifies by the key alone, and nothing is fetched.
func writeNoServicesRoot() (string, error) {
	f, err := os.CreateTemp("", "cosign-trusted-root-*.json")
	if err != nil {
		return "", fmt.Errorf("write a trusted root for offline verification: %w", err)
	}
	_, err = f.WriteString(`{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}` + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write a trusted root for offline verification: %w", err)
	}
	return f.Name(), nil
}
