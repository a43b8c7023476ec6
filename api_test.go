package jsonconn_test

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateAPI = flag.Bool("update", false, "rewrite testdata/api.txt from the package's exported API")

// apiFile is the exported API of the package, one line per name, field and
// method, in the manner of the Go repository's api/*.txt: every change to
// the API shows up as a diff of this file in review.
const apiFile = "testdata/api.txt"

// TestAPI renders the exported API of the package and compares it with
// testdata/api.txt. After an intended change, run
//
//	go test -run TestAPI -update .
//
// and review the diff. The rendering works from the syntax alone, so that
// it takes no type checking of the standard library: a type is written as
// the source writes it, a constant with its expression, and a variable with
// its declared type, or "error" for one set by errors.New. Parameter names
// are left out, since they are not API.
func TestAPI(t *testing.T) {
	t.Parallel()
	got, err := exportedAPI(".")
	if err != nil {
		t.Fatal(err)
	}
	if *updateAPI {
		if err := os.WriteFile(apiFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(apiFile)
	if err != nil {
		t.Fatalf("%v (go test -run TestAPI -update . writes it)", err)
	}
	want := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the exported API differs from %s (-file +code); if the change is intended, run go test -run TestAPI -update . and review the diff:\n%s", apiFile, diff)
	}
}

// TestAPIRendering checks that the rendering of TestAPI sees what it must:
// each kind of declaration, and nothing unexported.
func TestAPIRendering(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `package p

import "errors"

const Big = 1 << 18
const hidden = 1

var ErrX = errors.New("x")
var Count int
var (
	a, B = 1, 2
)

type T struct {
	Exported int
	Fn       func(v any) error
	hidden   int
	A, b     string
	*Embedded
}

type Embedded struct{}

type I interface {
	Do(n int) (ok bool, err error)
	hidden()
}

type F func(ctx, x int) error

type unexported struct{}

func (unexported) Method() {}

func (t *T) Method(a, b int, c ...string) (*T, error) { return nil, nil }

func (T) private() {}

func New[K comparable](k K) T { return T{} }

func private() {}
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := exportedAPI(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pkg p, const Big = 1 << 18",
		"pkg p, func New[K comparable](K) T",
		"pkg p, method (*T) Method(int, int, ...string) (*T, error)",
		"pkg p, type Embedded struct",
		"pkg p, type F func(int, int) error",
		"pkg p, type I interface { Do }",
		"pkg p, type I interface, Do(int) (bool, error)",
		"pkg p, type T struct",
		"pkg p, type T struct, A string",
		"pkg p, type T struct, Exported int",
		"pkg p, type T struct, Fn func(any) error",
		"pkg p, type T struct, embedded *Embedded",
		"pkg p, var B",
		"pkg p, var Count int",
		"pkg p, var ErrX error",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rendering (-want +got):\n%s", diff)
	}
}

// exportedAPI returns the lines of the exported API of the package in dir,
// sorted, from all its non-test Go files, whatever their build constraints.
func exportedAPI(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		r := apiRenderer{fset: fset, pkg: f.Name.Name, lines: seen}
		for _, d := range f.Decls {
			r.decl(d)
		}
	}
	lines := make([]string, 0, len(seen))
	for l := range seen {
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines, nil
}

type apiRenderer struct {
	fset  *token.FileSet
	pkg   string
	lines map[string]bool
}

func (r *apiRenderer) add(format string, args ...any) {
	r.lines[fmt.Sprintf("pkg %s, ", r.pkg)+fmt.Sprintf(format, args...)] = true
}

// expr prints e as the source writes it.
func (r *apiRenderer) expr(e ast.Expr) string {
	var b bytes.Buffer
	printer.Fprint(&b, r.fset, e)
	return b.String()
}

// typ prints a type as the source writes it, but for the parameter names
// of a func type.
func (r *apiRenderer) typ(e ast.Expr) string {
	if ft, ok := e.(*ast.FuncType); ok {
		return "func" + r.signature(ft)
	}
	return r.expr(e)
}

// fieldTypes returns the types of a field list, one per name (a field
// without names counts once), separated by commas.
func (r *apiRenderer) fieldTypes(fl *ast.FieldList) string {
	if fl == nil {
		return ""
	}
	var types []string
	for _, f := range fl.List {
		for range max(1, len(f.Names)) {
			types = append(types, r.typ(f.Type))
		}
	}
	return strings.Join(types, ", ")
}

// signature returns a function type as "(params) results", without names.
func (r *apiRenderer) signature(ft *ast.FuncType) string {
	s := "(" + r.fieldTypes(ft.Params) + ")"
	switch res := r.fieldTypes(ft.Results); {
	case res == "":
	case ft.Results.NumFields() == 1:
		s += " " + res
	default:
		s += " (" + res + ")"
	}
	return s
}

func (r *apiRenderer) decl(d ast.Decl) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			return
		}
		if d.Recv == nil {
			tparams := ""
			if d.Type.TypeParams != nil {
				var ps []string
				for _, f := range d.Type.TypeParams.List {
					for _, n := range f.Names {
						ps = append(ps, n.Name+" "+r.expr(f.Type))
					}
				}
				tparams = "[" + strings.Join(ps, ", ") + "]"
			}
			r.add("func %s%s%s", d.Name.Name, tparams, r.signature(d.Type))
			return
		}
		recv := r.expr(d.Recv.List[0].Type)
		if !ast.IsExported(strings.TrimPrefix(recv, "*")) {
			return // a method of an unexported type is not API
		}
		r.add("method (%s) %s%s", recv, d.Name.Name, r.signature(d.Type))
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.ValueSpec:
				r.value(d.Tok, s)
			case *ast.TypeSpec:
				r.typeSpec(s)
			}
		}
	}
}

// value renders the exported names of a const or var spec.
func (r *apiRenderer) value(tok token.Token, s *ast.ValueSpec) {
	for i, n := range s.Names {
		if !n.IsExported() {
			continue
		}
		switch {
		case s.Type != nil:
			r.add("%s %s %s", tok, n.Name, r.typ(s.Type))
		case tok == token.CONST && i < len(s.Values):
			r.add("const %s = %s", n.Name, r.expr(s.Values[i]))
		case i < len(s.Values) && strings.HasPrefix(r.expr(s.Values[i]), "errors.New("):
			r.add("var %s error", n.Name)
		default:
			r.add("%s %s", tok, n.Name) // an iota constant, or a var of inferred type
		}
	}
}

// typeSpec renders an exported type, with its exported fields or methods.
func (r *apiRenderer) typeSpec(s *ast.TypeSpec) {
	if !s.Name.IsExported() {
		return
	}
	name := s.Name.Name
	switch t := s.Type.(type) {
	case *ast.StructType:
		r.add("type %s struct", name)
		for _, f := range t.Fields.List {
			if len(f.Names) == 0 {
				r.add("type %s struct, embedded %s", name, r.expr(f.Type))
				continue
			}
			for _, n := range f.Names {
				if n.IsExported() {
					r.add("type %s struct, %s %s", name, n.Name, r.typ(f.Type))
				}
			}
		}
	case *ast.InterfaceType:
		var methods []string
		for _, m := range t.Methods.List {
			ft, ok := m.Type.(*ast.FuncType)
			if !ok {
				r.add("type %s interface, embedded %s", name, r.expr(m.Type))
				continue
			}
			for _, n := range m.Names {
				if n.IsExported() {
					methods = append(methods, n.Name)
					r.add("type %s interface, %s%s", name, n.Name, r.signature(ft))
				}
			}
		}
		r.add("type %s interface { %s }", name, strings.Join(methods, ", "))
	default:
		r.add("type %s %s", name, r.typ(s.Type))
	}
}
