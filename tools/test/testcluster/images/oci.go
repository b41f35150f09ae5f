// Package images builds minimal container images (a static binary and the
// few files it needs) as OCI archives and moves images into the cluster's
// containerd.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is a minimal image of one layer: the files listed, nothing else.
type Image struct {
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	Labels     map[string]string
}

// File is one entry of an image's layer: a copy of the host file Src, or a
// symbolic link to Link.
type File struct {
	Name string // path in the image, without the leading slash
	Src  string
	Link string
	Mode int64 // of a copied file
}

// WriteArchive writes an OCI image layout archive to out holding one image,
// named ref, whose only file is the static binary bin at /<base name>, which
// is also the entrypoint. No Docker engine is needed, as with FROM scratch.
func WriteArchive(out, ref, bin string, args ...string) error {
	name := filepath.Base(bin)
	return Image{
		Ref:        ref,
		Files:      []File{{Name: name, Src: bin, Mode: 0o755}},
		Entrypoint: []string{"/" + name},
		Cmd:        args,
	}.WriteArchive(out)
}

// WriteArchive writes the image as an OCI image layout archive to out.
// go-containerregistry builds the image and its layout; the layout is then
// packed as the tar `ctr images import` reads, which names the image by the
// index's io.containerd.image.name annotation.
func (im Image) WriteArchive(out string) error {
	img, err := im.build()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-layout-")
	if err != nil {
		return fmt.Errorf("create image layout dir: %w", err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write image layout: %w", err)
	}
	err = p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          im.Ref,
		"org.opencontainers.image.ref.name": path.Base(im.Ref),
	}))
	if err != nil {
		return fmt.Errorf("write image %s into its layout: %w", im.Ref, err)
	}
	tmp := out + ".tmp"
	if err := tarDir(dir, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write image archive %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("move image archive into place: %w", err)
	}
	return nil
}

// build is the OCI image: one uncompressed layer holding the files.
func (im Image) build() (v1.Image, error) {
	layer, err := layerTar(im.Files)
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: static.NewLayer(layer, types.OCIUncompressedLayer)})
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config = v1.Config{
		Entrypoint: im.Entrypoint, Cmd: im.Cmd, Env: im.Env, User: im.User,
		Labels: im.Labels, WorkingDir: "/",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// layerTar packs the files, with the directories their paths need, in the
// order given.
func layerTar(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		if d := path.Dir(f.Name); d != "." && !dirs[d] {
			for _, p := range parents(d) {
				if dirs[p] {
					continue
				}
				dirs[p] = true
				hdr := &tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
				if err := tw.WriteHeader(hdr); err != nil {
					return nil, fmt.Errorf("image layer: %w", err)
				}
			}
		}
		if f.Link != "" {
			hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: f.Name, Linkname: f.Link, Mode: 0o777, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, fmt.Errorf("image layer: %w", err)
			}
			continue
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("read image file: %w", err)
		}
		if err := addFile(tw, f.Name, bytes.NewReader(data), int64(len(data)), f.Mode); err != nil {
			return nil, fmt.Errorf("image layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	return buf.Bytes(), nil
}

// parents lists d and the directories above it, outermost first: a/b/c
// gives a, a/b, a/b/c.
func parents(d string) []string {
	var out []string
	for p := d; p != "." && p != "/"; p = path.Dir(p) {
		out = append([]string{p}, out...)
	}
	return out
}

// tarDir packs the regular files under dir into the tar file out, in
// lexical order (WalkDir's), so archives of the same layout are identical.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return err
		}
		return addFile(tw, filepath.ToSlash(rel), src, st.Size(), 0o644)
	})
	if err != nil {
		f.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// addFile writes a root-owned entry with a fixed time, so archives of the
// same binary are byte-identical.
func addFile(tw *tar.Writer, name string, r io.Reader, size, mode int64) error {
	hdr := &tar.Header{Name: name, Mode: mode, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}
