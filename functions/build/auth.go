package build

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Credentials say how to reach a registry, as func's --username, --password, --token,
// --registry-authfile and --registry-insecure do. With none set, credentials come from the
// docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, with its credential
// helpers), go-containerregistry's default keychain.
type Credentials struct {
	Username, Password string
	// Token is a registry bearer token.
	Token string
	// AuthFile is a docker config file (config.json format) to read credentials from.
	AuthFile string
	// Insecure allows plain HTTP and skips TLS verification.
	Insecure bool
}

// options are the remote and name options for c.
func (c Credentials) options() ([]remote.Option, []name.Option, error) {
	var ropts []remote.Option
	var nopts []name.Option
	switch {
	case c.Token != "":
		ropts = append(ropts, remote.WithAuth(&authn.Bearer{Token: c.Token}))
	case c.Username != "" || c.Password != "":
		if c.Username == "" || c.Password == "" {
			return nil, nil, errors.New("--username and --password go together")
		}
		ropts = append(ropts, remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}))
	case c.AuthFile != "":
		if _, err := os.Stat(c.AuthFile); err != nil {
			return nil, nil, fmt.Errorf("--registry-authfile: %w", err)
		}
		ropts = append(ropts, remote.WithAuthFromKeychain(fileKeychain{path: c.AuthFile}))
	default:
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if c.Insecure {
		nopts = append(nopts, name.Insecure)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --registry-insecure asks for it
		ropts = append(ropts, remote.WithTransport(tr))
	}
	return ropts, nopts, nil
}

// fileKeychain reads credentials from one docker config file.
type fileKeychain struct{ path string }

// Resolve implements authn.Keychain, looking the registry up as the default keychain does.
func (k fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	f, err := os.Open(k.path)
	if err != nil {
		return nil, fmt.Errorf("--registry-authfile: %w", err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("--registry-authfile %s: %w", k.path, err)
	}
	var empty types.AuthConfig
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, err
		}
		ac.ServerAddress = ""
		if ac != empty {
			return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
		}
	}
	return authn.Anonymous, nil
}
