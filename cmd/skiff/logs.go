package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/functions/logs"
)

func newLogsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs ksvc NAME [--revision R] [-f]",
		Short: "Print a Knative Service's logs on skiff up: its revisions' output and request logs (-f: follow them)",
		Long: `Print the logs of a Service's revisions, as skiff up keeps them in
<data dir>/logs/<namespace>/<revision>.log: each instance's output ("[0] ...", "[1] ..."), what the
runtime did ("[build] ...", "[pull] ..."), and, with request logs on (skiff up --request-log or
config-observability's logging.enable-request-log), one line per request in Envoy's access log
format ("[proxy] ..."). Each line is printed after its revision's name. With -f it keeps
printing new lines, and the lines of revisions created later, until interrupted.`,
		Example: `  skiff logs ksvc hello
  skiff logs ksvc hello --revision hello-00002 -f`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "ksvc", "kservice", "service", "services", "ksvcs":
			default:
				return fmt.Errorf("logs %s: only Knative Services' logs are kept (skiff logs ksvc NAME)", args[0])
			}
			// The name and namespace pick files under the data dir: refused unless they can
			// name an object, as get, delete and wait refuse them.
			c, _, ns, err := objectArgs(cmd, "ksvc", args[1])
			if err != nil {
				return err
			}
			if r := flagString(cmd, "revision"); r != "" {
				if err := apiclient.ValidateName(r); err != nil {
					return fmt.Errorf("--revision: %w", err)
				}
			}
			cwd, _ := os.Getwd()
			dir, err := logs.FindDataDir(flagString(cmd, "data-dir"), cwd)
			if err != nil {
				return err
			}
			follow, _ := cmd.Flags().GetBool("follow")
			l := &logs.Local{API: c, DataDir: dir, Revision: flagString(cmd, "revision")}
			return l.Stream(cmd.Context(), cmd.OutOrStdout(), args[1], ns, follow)
		},
	}
	addClientFlags(cmd)
	cmd.Flags().String("revision", "", "one revision of the Service only")
	cmd.Flags().BoolP("follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().String("data-dir", "", "skiff up's --data-dir, where its logs are ($SKIFF_DATA_DIR; default: the nearest .skiff)")
	return cmd
}
