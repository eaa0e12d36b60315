package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/controlplane/certs"
)

func newTLSCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "The local CA that signs the certificates `skiff up` serves",
	}
	ca := &cobra.Command{
		Use:   "ca",
		Short: "Print the local CA's certificate (PEM), for clients to trust: curl --cacert <(skiff tls ca)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, _ := cmd.Flags().GetString("data-dir")
			path := filepath.Join(dir, "tls", certs.CACertFile)
			if showPath, _ := cmd.Flags().GetBool("path"); showPath {
				abs, err := filepath.Abs(path)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), abs)
				return nil
			}
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no local CA at %s: `skiff up --data-dir %s` creates it", path, dir)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	ca.Flags().String("data-dir", ".skiff", "the data directory of `skiff up`")
	ca.Flags().Bool("path", false, "print the file's path instead of its content")
	cmd.AddCommand(ca)
	return cmd
}
