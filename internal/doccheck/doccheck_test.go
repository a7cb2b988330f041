package doccheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// packages are the directories, from the module's root, whose exported
// names must be documented.
var packages = []string{"engine", "engine/paxos", "engine/session", "client", "wal", "storage", "net", "net/certs", "chatroom"}

// TestExportedNamesDocumented fails on a package without a package doc,
// and on an exported name without a doc comment: a function, a method of
// an exported type, a type, or a constant or variable (documented by its
// own comment, a comment at the end of its line, or its group's).
func TestExportedNamesDocumented(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, dir := range packages {
		missing, err := undocumented(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range missing {
			t.Errorf("%s: %s has no doc comment", dir, m)
		}
	}
}

// TestCheckerFinds checks the checker against a package made to fail it.
func TestCheckerFinds(t *testing.T) {
	dir := t.TempDir()
	src := `package p

// Documented is.
func Documented() {}

func Bare() {}

// T is.
type T struct{}

func (T) Method() {}

func (T) unexported() {}

type u struct{}

// Exported methods of an unexported type are not the API.
func (u) Method() {}

const (
	// A is.
	A = 1
	B = 2 // B is.
	C = 3
)

// Group covers its names.
var (
	X, Y = 1, 2
)

var Z = 3
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := undocumented(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "[Bare C T.Method Z package doc]"
	if fmt.Sprint(got) != want {
		t.Fatalf("found %v, want %s", got, want)
	}
}

// undocumented returns what lacks a doc comment in the package in dir
// (its non-test files), sorted.
func undocumented(dir string) ([]string, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, pkg := range pkgs {
		hasDoc := false
		exportedType := map[string]bool{}
		for _, f := range pkg.Files {
			hasDoc = hasDoc || f.Doc != nil
			for _, d := range f.Decls {
				if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
					for _, s := range g.Specs {
						if ts := s.(*ast.TypeSpec); ts.Name.IsExported() {
							exportedType[ts.Name.Name] = true
						}
					}
				}
			}
		}
		if !hasDoc {
			missing = append(missing, "package doc")
		}
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				missing = append(missing, undocumentedIn(d, exportedType)...)
			}
		}
	}
	sort.Strings(missing)
	return missing, nil
}

func undocumentedIn(d ast.Decl, exportedType map[string]bool) []string {
	var missing []string
	switch d := d.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() || d.Doc != nil {
			return nil
		}
		if d.Recv == nil {
			return []string{d.Name.Name}
		}
		recv := receiverType(d.Recv.List[0].Type)
		if exportedType[recv] {
			return []string{recv + "." + d.Name.Name}
		}
	case *ast.GenDecl:
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.TypeSpec:
				if s.Name.IsExported() && d.Doc == nil && s.Doc == nil && s.Comment == nil {
					missing = append(missing, s.Name.Name)
				}
			case *ast.ValueSpec:
				if d.Doc != nil || s.Doc != nil || s.Comment != nil {
					continue
				}
				for _, n := range s.Names {
					if n.IsExported() {
						missing = append(missing, n.Name)
					}
				}
			}
		}
	}
	return missing
}

// receiverType is the name of a method's receiver type (T of T, *T, T[P]).
func receiverType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
