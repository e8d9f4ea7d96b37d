package config

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"unicode"

	"github.com/distribution/reference"
)

// validateListen refuses an API reachable from other machines without TLS,
// unless insecure_listen says a TLS-terminating proxy or a private network
// protects it.
func (a API) validateListen() []error {
	var errs []error
	if t := a.TLS; t != nil {
		if t.Cert == "" {
			errs = append(errs, fieldErr("api.tls.cert", "required with tls"))
		}
		if t.Key == "" {
			errs = append(errs, fieldErr("api.tls.key", "required with tls"))
		}
	}
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil || a.TLS != nil || a.InsecureListen || loopback(host) {
		return errs
	}
	return append(errs, fieldErr("api.listen", "%q is reachable from other machines: set api.tls (cert and key), "+
		"or api.insecure_listen: true when a TLS-terminating proxy or a private network protects it", a.Listen))
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// ParseImage reads a Docker image reference such as "web:1.4",
// "registry.local:5000/team/web:2" or "web@sha256:...": anything else
// (a path such as "../../v1.41/containers/x", spaces, upper case) is refused.
func ParseImage(image string) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, fmt.Errorf("image %q is not a Docker image reference: %w", image, err)
	}
	return ref, nil
}

// ImagePatterns are what a rollout of the service may run: allowed_images,
// or by default the repository of container.image with any tag or digest.
func (s Service) ImagePatterns() []string {
	if len(s.AllowedImages) > 0 {
		return s.AllowedImages
	}
	ref, err := ParseImage(s.Container.Image)
	if err != nil {
		return []string{s.Container.Image}
	}
	name := reference.FamiliarName(ref)
	return []string{name + ":*", name + "@*"}
}

// AllowsImage reports whether a rollout of the service may run ref: one of
// ImagePatterns matches it, written either short ("web:1") or in full
// ("docker.io/library/web:1"). '*' does not match '/'.
func (s Service) AllowsImage(ref reference.Named) bool {
	forms := []string{reference.FamiliarString(ref), ref.String()}
	for _, pattern := range s.ImagePatterns() {
		for _, form := range forms {
			if ok, _ := path.Match(pattern, form); ok {
				return true
			}
		}
	}
	return false
}

func (s Service) validateAllowedImages(p string) []error {
	var errs []error
	for i, pattern := range s.AllowedImages {
		fp := fmt.Sprintf("%s.allowed_images[%d]", p, i)
		if _, err := path.Match(pattern, ""); err != nil || pattern == "" || strings.IndexFunc(pattern, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			errs = append(errs, fieldErr(fp, "%q: want an image pattern such as registry.local/web:* ('*' matches any text but '/')", pattern))
		}
	}
	return errs
}
