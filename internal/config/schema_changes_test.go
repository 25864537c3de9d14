package config

import (
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

func TestSchemaChangesValidation(t *testing.T) {
	ps := validateSchemaChanges(SchemaChanges{
		SchemaPolicy: SchemaPolicy{RenameColumn: "rename", DropColumn: "keep"},
		Tables:       []TableSchemaPolicy{{Match: "[", SchemaPolicy: SchemaPolicy{Narrow: "new_column"}}},
	}, "pipelines[p].schema_changes")
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	require.Equal(t, []string{
		`pipelines[p].schema_changes.rename_column: must be one of hold, apply, new_column, fail, got "rename"`,
		`pipelines[p].schema_changes.tables[0].match: must be a table name or pattern like public.* (got "[")`,
		`pipelines[p].schema_changes.tables[0].narrow: must be one of hold, apply, fail, got "new_column"`,
	}, got)
	e := SchemaChanges{SchemaPolicy: SchemaPolicy{RenameColumn: "new_column"}, Tables: []TableSchemaPolicy{{Match: "public.orders", SchemaPolicy: SchemaPolicy{RenameColumn: "fail"}}}}.Evolution()
	require.Equal(t, schema.ActionNewColumn, e.For(schema.TableID{Namespace: "public", Name: "users"}).RenameColumn)
	require.Equal(t, schema.ActionFail, e.For(schema.TableID{Namespace: "public", Name: "orders"}).RenameColumn)
	require.Equal(t, schema.ActionKeep, e.For(schema.TableID{Namespace: "public", Name: "orders"}).DropColumn)
}
