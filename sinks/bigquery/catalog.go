package bigquery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cloud.google.com/go/bigquery"
	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/schema"
	"google.golang.org/api/iterator"
)

// Catalog implements sinks.Cataloger: the tables of the configured dataset
// (the namespace of every table listed), a page at a time, with their
// columns, primary key (a BigQuery primary key is not enforced; most tables
// have none) and row counts. It lists the dataset's table names, then reads
// the metadata of the page's tables only. It reads only, on clients of its
// own.
func (s *Sink) Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	afterDS, afterName, err := catalog.ParseCursor(q.After)
	if err != nil {
		return catalog.Page{}, err
	}
	ds := s.cfg.Dataset
	page := catalog.Page{Tables: []catalog.Table{}}
	if (q.Schema != "" && q.Schema != ds) || afterDS > ds {
		return page, nil
	}
	if afterDS < ds {
		afterName = ""
	}
	v := &Sink{cfg: s.cfg, meta: s.meta, labels: s.labels, log: s.log}
	if err := v.connect(ctx); err != nil {
		return catalog.Page{}, err
	}
	defer v.Close(context.WithoutCancel(ctx)) //nolint:errcheck // it only read
	var names []string
	all := 0
	it := v.bq.Dataset(ds).Tables(ctx)
	search := strings.ToLower(q.Search)
	for {
		t, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return catalog.Page{}, classify(fmt.Errorf("list the tables of dataset %s: %w", ds, err))
		}
		all++
		if t.TableID > afterName && (search == "" || strings.Contains(strings.ToLower(ds+"."+t.TableID), search)) {
			names = append(names, t.TableID)
		}
	}
	slices.Sort(names)
	if len(names) > q.Limit {
		names = names[:q.Limit]
		page.Next = catalog.Cursor(ds, names[q.Limit-1])
	}
	for _, name := range names {
		md, err := v.bq.Dataset(ds).Table(name).Metadata(ctx)
		if err != nil {
			return catalog.Page{}, classify(fmt.Errorf("read the metadata of %s.%s: %w", ds, name, err))
		}
		t := catalog.Table{Table: schema.TableID{Namespace: ds, Name: name}, Columns: []catalog.Column{}, PrimaryKey: []string{}}
		for _, f := range md.Schema {
			typ := string(f.Type)
			if f.Repeated {
				typ = "ARRAY<" + typ + ">"
			}
			t.Columns = append(t.Columns, catalog.Column{Name: f.Name, Type: typ, Nullable: !f.Required && !f.Repeated})
		}
		if tc := md.TableConstraints; tc != nil && tc.PrimaryKey != nil {
			t.PrimaryKey = append(t.PrimaryKey, tc.PrimaryKey.Columns...)
		}
		if md.Type == bigquery.RegularTable {
			n := int64(md.NumRows)
			t.EstimatedRows = &n
		}
		page.Tables = append(page.Tables, t)
	}
	if q.After == "" && q.Search == "" && q.Schema == "" {
		page.Schemas = []catalog.Schema{{Name: ds, Tables: all}}
	}
	return page, nil
}
