// Command skiff is Skiff's one binary: every component and every client command is a
// subcommand.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "Knative Serving, Eventing and Functions on Envoy, without sidecars",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().String("log-format", "text", "log format: text or json (structured, with trace_id and span_id on lines logged for a traced request)")
	root.AddCommand(newUpCommand(), newControlPlaneCommand(), newGatewayCommand(),
		newExtProcCommand(), newApplyCommand(), newGetCommand(), newDeleteCommand(), newWaitCommand(),
		newSendCommand(), newLogsCommand(), newKubeconfigCommand())
	root.AddCommand(newFuncCommand())
	root.AddCommand(newControllerCommand())
	root.AddCommand(newTLSCommand())
	return root
}

// logger builds the process logger from --log-level and --log-format.
func logger(cmd *cobra.Command) (*slog.Logger, error) {
	lvl, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(lvl)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	h, err := telemetry.NewLogHandler(os.Stderr, logFormatFlag(cmd), level)
	if err != nil {
		return nil, fmt.Errorf("--log-format: %w", err)
	}
	return slog.New(h), nil
}
