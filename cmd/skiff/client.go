package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

func addClientFlags(cmd *cobra.Command) {
	cmd.Flags().String("api-addr", envOr("SKIFF_API_ADDR", "127.0.0.1:7070"), "address of the Skiff API (env SKIFF_API_ADDR)")
	cmd.Flags().StringP("namespace", "n", "default", "namespace")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func client(cmd *cobra.Command) (*apiclient.Client, string) {
	addr, _ := cmd.Flags().GetString("api-addr")
	ns, _ := cmd.Flags().GetString("namespace")
	return apiclient.New(addr), ns
}

// objectArgs resolves the KIND and NAME arguments of get, delete and wait with the client
// and namespace, refusing before anything is sent a name or --namespace that cannot name an
// object (e.g. "x/../other", which would otherwise reach another object's URL).
func objectArgs(cmd *cobra.Command, kind, name string) (*apiclient.Client, *api.Kind, string, error) {
	c, ns := client(cmd)
	k, err := lookupKind(kind)
	if err != nil {
		return nil, nil, "", err
	}
	if err := apiclient.ValidateNamespace(ns); err != nil {
		return nil, nil, "", fmt.Errorf("--namespace: %w", err)
	}
	if err := apiclient.ValidateName(name); err != nil {
		return nil, nil, "", fmt.Errorf("%s %w", k.Kind, err)
	}
	return c, k, ns, nil
}

func lookupKind(name string) (*api.Kind, error) {
	k := api.LookupKind(name)
	if k == nil {
		return nil, fmt.Errorf("unknown resource kind %q (try ksvc, configurations, revisions, routes, domainmappings, brokers, triggers, pingsources, sinkbindings, channels, inmemorychannels, subscriptions, sequences, parallels, apiserversources, containersources, clusterdomainclaims, configmaps, secrets)", name)
	}
	return k, nil
}

func newApplyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update resources from YAML or JSON manifests, like kubectl apply",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns := client(cmd)
			files, _ := cmd.Flags().GetStringArray("filename")
			if len(files) == 0 {
				return errors.New("-f is required: a file, a directory or - for standard input")
			}
			var failed error
			for _, f := range files {
				docs, err := apiclient.ReadManifests(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for _, d := range docs {
					res, err := c.Apply(cmd.Context(), d, ns)
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "Error from server (%s): %v\n", d.Source, err)
						failed = errors.New("some resources were not applied")
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), res)
				}
			}
			return failed
		},
	}
	addClientFlags(cmd)
	cmd.Flags().StringArrayP("filename", "f", nil, "manifest file, directory or - (repeatable)")
	return cmd
}

func newGetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show resources as a table, YAML or JSON",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns := client(cmd)
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("output")
			if all, _ := cmd.Flags().GetBool("all-namespaces"); all {
				ns = ""
			}
			if len(args) == 2 {
				if _, _, _, err := objectArgs(cmd, args[0], args[1]); err != nil {
					return err
				}
				obj, err := c.Get(cmd.Context(), k, ns, args[1])
				if err != nil {
					return err
				}
				return apiclient.Print(cmd.OutOrStdout(), k, out, []json.RawMessage{obj}, true)
			}
			objs, err := c.List(cmd.Context(), k, ns)
			if err != nil {
				return err
			}
			return apiclient.Print(cmd.OutOrStdout(), k, out, objs, false)
		},
	}
	addClientFlags(cmd)
	cmd.Flags().StringP("output", "o", "", "output format: yaml or json (default: a table)")
	cmd.Flags().BoolP("all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

func newDeleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a resource and everything it owns",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, k, ns, err := objectArgs(cmd, args[0], args[1])
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), k, ns, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s.%s %q deleted\n", k.Plural, k.Group, args[1])
			return nil
		},
	}
	addClientFlags(cmd)
	return cmd
}

func newWaitCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wait KIND NAME",
		Short: "Wait until a resource is Ready (its Ready condition True), like kubectl wait --for=condition=Ready",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, k, ns, err := objectArgs(cmd, args[0], args[1])
			if err != nil {
				return err
			}
			timeout, _ := cmd.Flags().GetDuration("timeout")
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			obj, err := apiclient.WaitReady(ctx, c, k, ns, args[1])
			if err != nil {
				return err
			}
			var s struct {
				Status struct {
					URL string `json:"url"`
				} `json:"status"`
			}
			_ = json.Unmarshal(obj, &s)
			fmt.Fprintf(cmd.OutOrStdout(), "%s.%s/%s condition met %s\n", k.Plural, k.Group, args[1], s.Status.URL)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().Duration("timeout", 2*time.Minute, "how long to wait")
	return cmd
}
