package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/client/apiclient"
)

func newKubeconfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Write a kubeconfig context for the running skiff up, so that kubectl and client-go tools use its API",
		Long: "Adds a context (default \"skiff\") for the running `skiff up` to the kubeconfig file kubectl reads " +
			"($KUBECONFIG, else ~/.kube/config), keeping its other contexts, and makes it the current one. " +
			"The context holds no credentials: the local API is unauthenticated and binds 127.0.0.1 (--api-addr), " +
			"so only this machine reaches it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns := client(cmd)
			name, _ := cmd.Flags().GetString("context")
			path, _ := cmd.Flags().GetString("kubeconfig")
			current, _ := cmd.Flags().GetBool("set-current")
			opts := apiclient.KubeconfigOptions{Name: name, Namespace: ns, SetCurrent: current}
			if print, _ := cmd.Flags().GetBool("print"); print {
				cfg, err := c.Kubeconfig(cmd.Context(), opts)
				if err != nil {
					return err
				}
				out, err := clientcmd.Write(*cfg)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			if path == "" {
				path = apiclient.DefaultKubeconfigPath()
			}
			written, err := c.WriteKubeconfig(cmd.Context(), path, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q in %s: %s, namespace %s, no credentials (local only)\n", written, path, c.BaseURL, ns)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().String("kubeconfig", "", "kubeconfig file to write (default: the first file in $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().String("context", "skiff", "name of the context (and of its cluster and user)")
	cmd.Flags().Bool("set-current", true, "make it the current context")
	cmd.Flags().Bool("print", false, "print a kubeconfig with only this context instead of writing one")
	return cmd
}
