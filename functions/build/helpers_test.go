package build

import (
	"os"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

func envVar(n, v string) funcyaml.Env { return funcyaml.Env{Name: n, Value: &v} }

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }
