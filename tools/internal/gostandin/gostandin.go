// Package gostandin provides official images that are Go programs on BusyBox
// (the Prometheus project's images: prom/prometheus, the postgres exporter):
// present, pulled, or, where no registry answers, a stand-in under the
// official name with the same layout, its programs built at the image's
// version from the Go module proxy and BusyBox from Debian's busybox-static.
//
// The build is cached outside the checkout, one directory per recipe and
// version, so a fresh clone on the same machine builds nothing.
package gostandin

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/cachedir"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gomod"
	"scalable-app/tools/internal/progress"
	"scalable-app/tools/internal/standin"
)

// Recipe is one official image and how its stand-in is made.
type Recipe struct {
	Ref      string            // the official name, e.g. prom/prometheus:v2.53.3
	Title    string            // for the label and progress lines
	Module   string            // the Go module its programs come from
	Version  string            // the module's version on the proxy
	Commands []string          // main packages in the module, built into /bin
	Ldflags  string            // added to -s -w: the version stamps upstream's release build sets
	Copy     map[string]string // a file or folder of the module -> its path in the image
	Links    map[string]string // a path in the image -> the target of a symbolic link there
	Writable []string          // folders the image's user (nobody) owns
	Config   string            // the Dockerfile's lines after the files: USER, EXPOSE, ENTRYPOINT, ...
}

// name is the recipe's cache entry: its image's repository and tag, and
// its digest, so a changed recipe builds afresh.
func (r Recipe) name() string {
	return strings.NewReplacer("/", "_", ":", "-").Replace(r.Ref) + "-" + strings.TrimPrefix(r.digest(), "sha256:")[:12]
}

// Builder builds recipes into the cache.
type Builder struct {
	Run      *command.Runner
	CacheDir string // DefaultCacheDir unless a test or a flag says otherwise
	Log      io.Writer
}

// DefaultCacheDir keeps the builds outside any checkout.
const DefaultCacheDir = "/var/cache/scalable-app/gostandin"

// Root builds the stand-in's file tree, or finds it in the cache, and returns
// its directory: rootfs/ holds what the image holds, with the programs in
// rootfs/bin.
func (b Builder) Root(ctx context.Context, r Recipe) (string, error) {
	dir := filepath.Join(b.CacheDir, r.name())
	say := progress.New(b.Log)
	if cachedir.Complete(dir) {
		return dir, nil
	}
	err := say.Step("build "+r.Ref+" from "+r.Module+"@"+r.Version+" (cache miss; minutes once)", func() error {
		return cachedir.Fill(dir, func(tmp string) error { return b.build(ctx, r, tmp) })
	})
	if err != nil {
		return "", err
	}
	return dir, nil
}

// Program builds (or finds) the recipe and returns the path of one of its
// programs, for a tool that runs it on this machine (promtool).
func (b Builder) Program(ctx context.Context, r Recipe, name string) (string, error) {
	dir, err := b.Root(ctx, r)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "rootfs", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s has no program %s: %w", r.Ref, name, err)
	}
	return p, nil
}

func (b Builder) build(ctx context.Context, r Recipe, out string) error {
	src, err := b.moduleSource(ctx, r, out)
	if err != nil {
		return err
	}
	rootfs := filepath.Join(out, "rootfs")
	args := []string{"build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w " + r.Ldflags), "-o", filepath.Join(rootfs, "bin") + "/"}
	_, err = b.Run.Exec(ctx, command.Cmd{
		What: "build " + r.Title + " " + r.Version, Name: "go", Args: append(args, r.Commands...), Dir: src,
		Env: []string{"CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly"},
	})
	if err != nil {
		return err
	}
	for from, to := range r.Copy {
		if err := copyTree(filepath.Join(src, from), filepath.Join(rootfs, to)); err != nil {
			return fmt.Errorf("copy %s into the image: %w", from, err)
		}
	}
	if err := os.RemoveAll(src); err != nil {
		return fmt.Errorf("remove the module's copy: %w", err)
	}
	// A recipe of programs alone (promtool for this machine) is no image.
	if r.Config != "" {
		if err := b.busybox(ctx, out, rootfs); err != nil {
			return err
		}
	}
	for link, target := range r.Links {
		p := filepath.Join(rootfs, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("link %s: %w", link, err)
		}
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("link %s: %w", link, err)
		}
	}
	// The folders nobody owns move out of the root-owned tree: a COPY
	// --chown of their own creates them, and so gives them to nobody too.
	for _, w := range r.Writable {
		from, to := filepath.Join(rootfs, w), filepath.Join(out, "owned", w)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return fmt.Errorf("create build context: %w", err)
		}
		if _, err := os.Lstat(from); err == nil {
			err = os.Rename(from, to)
		} else {
			err = os.MkdirAll(to, 0o755)
		}
		if err != nil {
			return fmt.Errorf("prepare %s for its owner: %w", w, err)
		}
	}
	return writeAccounts(rootfs)
}

// moduleSource downloads the module through the proxy and copies it into a
// writable folder under out (the module cache is read-only).
func (b Builder) moduleSource(ctx context.Context, r Recipe, out string) (string, error) {
	dir, err := gomod.Download(ctx, b.Run, r.Module, r.Version)
	if err != nil {
		return "", err
	}
	src := filepath.Join(out, "src")
	if err := os.CopyFS(src, os.DirFS(dir)); err != nil {
		return "", fmt.Errorf("copy %s@%s: %w", r.Module, r.Version, err)
	}
	return src, nil
}

// busybox puts Debian's static BusyBox into rootfs/bin with a link for each
// applet, as in the Prometheus project's base image.
func (b Builder) busybox(ctx context.Context, out, rootfs string) error {
	version, err := aptget.Candidate(ctx, b.Run, "busybox-static")
	if err != nil {
		return err
	}
	dl := filepath.Join(out, "busybox")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return fmt.Errorf("create busybox download dir: %w", err)
	}
	root, err := aptget.Extract(ctx, b.Run, dl, "busybox-static", version)
	if err != nil {
		return err
	}
	bin := filepath.Join(rootfs, "bin", "busybox")
	if err := copyTree(aptget.BusyboxPath(root), bin); err != nil {
		return fmt.Errorf("copy busybox: %w", err)
	}
	if err := os.RemoveAll(dl); err != nil {
		return fmt.Errorf("remove busybox download: %w", err)
	}
	list, err := b.Run.Output(ctx, "list BusyBox's applets", bin, "--list")
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(string(list)) {
		p := filepath.Join(rootfs, "bin", a)
		if _, err := os.Lstat(p); err == nil || strings.Contains(a, "/") {
			continue // one of the image's programs has this name
		}
		if err := os.Symlink("busybox", p); err != nil {
			return fmt.Errorf("link busybox applet %s: %w", a, err)
		}
	}
	return nil
}

// writeAccounts gives the image root and nobody (65534), whom the official
// images run as, and a /tmp anyone may write.
func writeAccounts(rootfs string) error {
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\n",
	}
	for name, content := range files {
		p := filepath.Join(rootfs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	tmp := filepath.Join(rootfs, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create /tmp: %w", err)
	}
	if err := os.Chmod(tmp, os.ModeSticky|0o777); err != nil {
		return fmt.Errorf("create /tmp: %w", err)
	}
	return nil
}

func copyTree(from, to string) error {
	fi, err := os.Stat(from)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.CopyFS(to, os.DirFS(from))
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, fi.Mode().Perm())
}

// Dockerfile is the stand-in's image on the cached file tree: the files,
// the folders nobody owns, and the official image's configuration.
func (r Recipe) Dockerfile() string {
	var b strings.Builder
	b.WriteString("FROM scratch\nCOPY rootfs/ /\n")
	writable := append([]string(nil), r.Writable...)
	sort.Strings(writable)
	for _, w := range writable {
		w = strings.Trim(w, "/")
		fmt.Fprintf(&b, "COPY --chown=65534:65534 %s/ /%s/\n", path.Join("owned", w), w)
	}
	fmt.Fprintf(&b, "LABEL org.opencontainers.image.title=%q org.opencontainers.image.version=%q \\\n", r.Title, r.Version)
	fmt.Fprintf(&b, "      org.opencontainers.image.description=%q\n", "stand-in for "+r.Ref+": "+r.Module+"@"+r.Version+" built from the Go module proxy, on Debian's busybox-static")
	b.WriteString(r.Config)
	return b.String()
}

// recipeLabel marks a stand-in built here with its recipe's digest: one built
// from an older recipe is built again.
const recipeLabel = "io.scalable-app.standin.recipe"

func (r Recipe) digest() string {
	var copies []string
	for k, v := range r.Copy {
		copies = append(copies, k+"="+v)
	}
	sort.Strings(copies)
	h := sha256.Sum256([]byte(strings.Join([]string{r.Dockerfile(), r.Module, r.Version, strings.Join(r.Commands, ","), r.Ldflags, strings.Join(copies, ",")}, "\n")))
	return fmt.Sprintf("sha256:%x", h)
}

// Options configure Ensure.
type Options struct {
	Builder
	Host   standin.Host
	Source standin.Source
	Target string // the make target that provides the image, for messages
}

// Ensure makes the recipe's image available to Docker and says how.
func Ensure(ctx context.Context, o Options, r Recipe) error {
	say := progress.New(o.Log).Printf
	out, err := o.Run.Output(ctx, "look up image "+r.Ref, o.Source.Docker, "image", "inspect",
		"--format", `{{index .Config.Labels "`+recipeLabel+`"}}`, r.Ref)
	builtHere := strings.TrimSpace(string(out))
	switch {
	case err == nil && builtHere == r.digest():
		say("%s is present (a stand-in from the current recipe)", r.Ref)
		return nil
	case err == nil && builtHere != "":
		say("%s is a stand-in from an older recipe: building it again", r.Ref)
	default:
		how, pullErr := o.Source.Local(ctx, r.Ref)
		if pullErr == nil {
			say("%s is %s", r.Ref, how)
			return nil
		}
		if err := o.Host.CanBuild(r.Ref, o.Target); err != nil {
			return fmt.Errorf("%w\n%w", err, pullErr)
		}
		say("cannot pull %s (%s): building a stand-in", r.Ref, standin.FirstLine(pullErr.Error()))
	}
	dir, err := o.Root(ctx, r)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "gostandin-")
	if err != nil {
		return fmt.Errorf("create build context: %w", err)
	}
	defer os.RemoveAll(work)
	dockerfile := filepath.Join(work, "Dockerfile")
	content := r.Dockerfile() + fmt.Sprintf("LABEL %s=%s\n", recipeLabel, r.digest())
	if err := os.WriteFile(dockerfile, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write the stand-in's Dockerfile: %w", err)
	}
	say("building %s", r.Ref)
	if err := o.Run.Run(ctx, "build the stand-in "+r.Ref, o.Source.Docker, "build", "-q", "-f", dockerfile, "-t", r.Ref, dir); err != nil {
		return err
	}
	say("%s ready", r.Ref)
	return nil
}
