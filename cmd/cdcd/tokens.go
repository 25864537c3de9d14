package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/spf13/cobra"
)

// newTokens manages API tokens on the metadata store directly, so that the first
// token can be made without one (run it where the server's data dir or store URL is).
func newTokens(lf *logFlags) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{Use: "tokens", Short: "Manage API tokens (on the metadata store directly)"}
	sf.register(cmd)
	for _, name := range []string{"data-dir", "store-url", "secret-key-file"} {
		cmd.PersistentFlags().AddFlag(cmd.Flags().Lookup(name))
	}
	// on runs f against the store with the command's args.
	on := func(f func(ctx context.Context, cmd *cobra.Command, args []string, st store.Store) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, lf, &sf, func(ctx context.Context, _ *slog.Logger, st store.Store) error {
				return f(ctx, cmd, args, st)
			})
		}
	}
	create := &cobra.Command{Use: "create NAME", Short: "Create a token and print it once", Args: cobra.ExactArgs(1),
		RunE: on(func(ctx context.Context, cmd *cobra.Command, args []string, st store.Store) error {
			plain, t, err := st.CreateToken(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "token %s (%s) created; it is shown only now. From now on the API requires a token.\n", t.ID, t.Name)
			fmt.Fprintln(cmd.OutOrStdout(), plain)
			return nil
		})}
	list := &cobra.Command{Use: "list", Short: "List tokens (never their values)", Args: cobra.NoArgs,
		RunE: on(func(ctx context.Context, cmd *cobra.Command, _ []string, st store.Store) error {
			ts, err := st.ListTokens(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED")
			for _, t := range ts {
				used := "never"
				if !t.LastUsedAt.IsZero() {
					used = t.LastUsedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format(time.RFC3339), used)
			}
			return tw.Flush()
		})}
	del := &cobra.Command{Use: "delete ID", Short: "Revoke a token", Args: cobra.ExactArgs(1),
		RunE: on(func(ctx context.Context, cmd *cobra.Command, args []string, st store.Store) error {
			if err := st.DeleteToken(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s: revoked\n", args[0])
			return nil
		})}
	cmd.AddCommand(create, list, del)
	return cmd
}
