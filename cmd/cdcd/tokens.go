package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	// (create may make the store: the first token comes before the first
	// serve on a non-loopback address; it says where)
	on := func(f func(ctx context.Context, cmd *cobra.Command, args []string, st store.Store) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if err := sf.mustExist(); err != nil {
				if cmd.Name() != "create" {
					return err
				}
				abs, _ := filepath.Abs(sf.dataDir)
				fmt.Fprintf(cmd.ErrOrStderr(), "note: no metadata store in %s yet: creating one (and its secret key) there; run `cdcd serve --data-dir %s` for the server to use this token\n", abs, abs)
			}
			return withStore(cmd, lf, &sf, func(ctx context.Context, _ *slog.Logger, st store.Store) error {
				return f(ctx, cmd, args, st)
			})
		}
	}
	var role string
	var expiresIn time.Duration
	create := &cobra.Command{Use: "create NAME --role admin|editor|viewer", Short: "Create a token and print it once", Args: cobra.ExactArgs(1),
		Long: `Creates an API token and prints it once. Roles: admin (everything, tokens and
the audit log included), editor (connections, pipelines, schema-change decisions),
viewer (read-only, metrics). Names match ` + store.TokenName.String() + `.`,
		RunE: on(func(ctx context.Context, cmd *cobra.Command, args []string, st store.Store) error {
			r, err := store.ParseRole(role)
			if err != nil {
				return &exitError{2, fmt.Errorf("--role: %w", err)}
			}
			spec := store.TokenSpec{Name: args[0], Role: r}
			if expiresIn != 0 {
				if expiresIn < time.Minute {
					return &exitError{2, fmt.Errorf("--expires-in must be at least 1m, got %s", expiresIn)}
				}
				spec.ExpiresAt = time.Now().Add(expiresIn)
			}
			if err := spec.Validate(); err != nil {
				return &exitError{2, err}
			}
			plain, t, err := st.CreateToken(ctx, spec)
			if err != nil {
				return err
			}
			_ = st.RecordAudit(ctx, store.AuditEntry{TokenName: "cli", Action: "cdcd tokens create", Target: "token " + t.ID + " (" + t.Name + ")", Status: 201, Remote: "local"})
			exp := "never expires"
			if !t.ExpiresAt.IsZero() {
				exp = "expires " + t.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(os.Stderr, "token %s (%s, role %s, %s) created; it is shown only now. From now on the API requires a token.\n", t.ID, t.Name, t.Role, exp)
			fmt.Fprintln(cmd.OutOrStdout(), plain)
			return nil
		})}
	create.Flags().StringVar(&role, "role", "", "admin, editor or viewer (required)")
	create.Flags().DurationVar(&expiresIn, "expires-in", 0, "make the token stop working after this long (e.g. 720h); default never")
	_ = create.MarkFlagRequired("role")
	list := &cobra.Command{Use: "list", Short: "List tokens (never their values)", Args: cobra.NoArgs,
		RunE: on(func(ctx context.Context, cmd *cobra.Command, _ []string, st store.Store) error {
			ts, err := st.ListTokens(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tLAST USED\tEXPIRES")
			at := func(t time.Time, none string) string {
				if t.IsZero() {
					return none
				}
				return t.Format(time.RFC3339)
			}
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, printable(t.Name), t.Role, at(t.CreatedAt, "-"), at(t.LastUsedAt, "never"), at(t.ExpiresAt, "never"))
			}
			return tw.Flush()
		})}
	del := &cobra.Command{Use: "delete ID", Short: "Revoke a token", Args: cobra.ExactArgs(1),
		RunE: on(func(ctx context.Context, cmd *cobra.Command, args []string, st store.Store) error {
			if err := st.DeleteToken(ctx, args[0]); err != nil {
				return err
			}
			_ = st.RecordAudit(ctx, store.AuditEntry{TokenName: "cli", Action: "cdcd tokens delete", Target: "token " + args[0], Status: 204, Remote: "local"})
			fmt.Fprintf(cmd.OutOrStdout(), "token %s: revoked\n", args[0])
			return nil
		})}
	cmd.AddCommand(create, list, del)
	return cmd
}

// printable shows s with control characters escaped, so that a name stored
// by an older cdcd cannot drive the terminal.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) < 0 {
		return s
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}
