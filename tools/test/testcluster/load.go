package testcluster

import (
	"context"
	"fmt"
	"os"
	"strings"

	"scalable-app/tools/test/testcluster/images"
)

// Load copies images into the cluster's containerd (namespace k8s.io), as
// `minikube image load` does. A reference is taken from the local Docker
// engine (docker save); a path ending in .tar is imported as an archive.
func (c *Cluster) Load(ctx context.Context, refs ...string) error {
	if err := c.requireRoot(); err != nil {
		return err
	}
	if len(refs) == 0 {
		return fmt.Errorf("load: name at least one image, e.g. scalable-app:latest")
	}
	closeLog, err := c.openCommandLogIfState()
	if err != nil {
		return err
	}
	defer closeLog()
	if err := c.ready.containerd(ctx); err != nil {
		return fmt.Errorf("load: the test cluster is not running (containerd at %s): run make cluster-up first", c.cfg.ContainerdSocket())
	}
	st := c.store()
	for _, ref := range refs {
		if strings.HasSuffix(ref, ".tar") {
			if _, err := os.Stat(ref); err != nil {
				return fmt.Errorf("load %s: %w", ref, err)
			}
			if err := st.ImportArchive(ctx, ref); err != nil {
				return err
			}
			c.out.Printf("loaded archive %s", ref)
			continue
		}
		if err := c.run.Run(ctx, "reach the Docker engine", "docker", "info", "--format", "{{.ID}}"); err != nil {
			return images.ErrNoDocker
		}
		if err := c.run.Run(ctx, "find image "+ref, "docker", "image", "inspect", "--format", "{{.Id}}", ref); err != nil {
			return fmt.Errorf("load: Docker has no image %q: build it first (docker build -t %s .)", ref, ref)
		}
		if err := st.ImportFromDocker(ctx, ref); err != nil {
			return err
		}
		name := images.Normalize(ref)
		has, err := st.Has(ctx, name)
		if err != nil {
			return err
		}
		if !has {
			return fmt.Errorf("load %s: imported, but the cluster has no image %s", ref, name)
		}
		c.out.Printf("loaded %s into the cluster as %s", ref, name)
	}
	return nil
}
