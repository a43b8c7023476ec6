package jsonconn_test

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/build/constraint"
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
// the source writes it, a constant with its expression (iota evaluated),
// and a variable with its declared type, or "error" for one set by
// errors.New. Parameter names are left out, since they are not API. Aliases,
// type parameters and the unexported methods of an exported interface show.
// What syntax cannot show is not checked: the methods an exported struct
// gets from an embedded unexported type (the package embeds none), and
// whether a struct stays comparable.
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

type Alias = T

type Set[K comparable] map[K]struct{}

type Kind int

const (
	KindA Kind = iota
	KindB
	kindC
	KindD = KindB * 10
)

type unexported struct{}

func (unexported) Method() {}

func (t *T) Method(a, b int, c ...string) (*T, error) { return nil, nil }

func (T) private() {}

func New[K comparable](k K) T { return T{} }

func private() {}
`
	for name, text := range map[string]string{
		"p.go":       src,
		"_hidden.go": "package p\n\nfunc Underscore() {}\n",
		"gen.go":     "//go:build ignore\n\npackage main\n\nfunc Generate() {}\n",
		"unix.go":    "//go:build unix\n\npackage p\n\nfunc OnUnix() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := exportedAPI(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pkg p, const Big = 1 << 18",
		"pkg p, const KindA Kind = 0",
		"pkg p, const KindB Kind = 1",
		"pkg p, const KindD = KindB * 10",
		"pkg p, func New[K comparable](K) T",
		"pkg p, func OnUnix()",
		"pkg p, method (*T) Method(int, int, ...string) (*T, error)",
		"pkg p, type Alias = T",
		"pkg p, type Embedded struct",
		"pkg p, type F func(int, int) error",
		"pkg p, type I interface { Do, unexported methods }",
		"pkg p, type I interface, Do(int) (bool, error)",
		"pkg p, type I interface, unexported methods",
		"pkg p, type Kind int",
		"pkg p, type Set[K comparable] map[K]struct{}",
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
// sorted, from all its non-test Go files for every platform: those the go
// command ignores (named _* or .*, or built only with the tag "ignore") are
// left out.
func exportedAPI(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasSuffix(base, "_test.go") || strings.HasPrefix(base, "_") || strings.HasPrefix(base, ".") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution|parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if ignored(f) {
			continue
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

// ignored reports whether f's build constraint holds only with the tag
// "ignore", and so on no platform.
func ignored(f *ast.File) bool {
	for _, g := range f.Comments {
		if g.Pos() > f.Package {
			break
		}
		for _, c := range g.List {
			if constraint.IsGoBuild(c.Text) {
				expr, err := constraint.Parse(c.Text)
				return err == nil && !expr.Eval(func(tag string) bool { return tag != "ignore" })
			}
		}
	}
	return false
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
			r.add("func %s%s%s", d.Name.Name, r.typeParams(d.Type.TypeParams), r.signature(d.Type))
			return
		}
		recv := r.expr(d.Recv.List[0].Type)
		if !ast.IsExported(strings.TrimPrefix(recv, "*")) {
			return // a method of an unexported type is not API
		}
		r.add("method (%s) %s%s", recv, d.Name.Name, r.signature(d.Type))
	case *ast.GenDecl:
		// A const spec without values repeats the type and values of the
		// one before it, with iota its index in the group.
		var typ ast.Expr
		var values []ast.Expr
		for iota, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.ValueSpec:
				if d.Tok == token.CONST && len(s.Values) > 0 {
					typ, values = s.Type, s.Values
				} else if d.Tok == token.CONST {
					s = &ast.ValueSpec{Names: s.Names, Type: typ, Values: values}
				}
				r.value(d.Tok, s, iota)
			case *ast.TypeSpec:
				r.typeSpec(s)
			}
		}
	}
}

// value renders the exported names of a const or var spec, the iota-th of
// its group.
func (r *apiRenderer) value(tok token.Token, s *ast.ValueSpec, iota int) {
	for i, n := range s.Names {
		if !n.IsExported() {
			continue
		}
		var value string
		if i < len(s.Values) {
			value = r.expr(s.Values[i])
			if value == "iota" {
				value = fmt.Sprint(iota)
			} else if strings.Contains(value, "iota") {
				value = fmt.Sprintf("%s (iota = %d)", value, iota)
			}
		}
		switch {
		case tok == token.CONST && s.Type != nil && value != "":
			r.add("const %s %s = %s", n.Name, r.typ(s.Type), value)
		case tok == token.CONST && value != "":
			r.add("const %s = %s", n.Name, value)
		case s.Type != nil:
			r.add("%s %s %s", tok, n.Name, r.typ(s.Type))
		case strings.HasPrefix(value, "errors.New("):
			r.add("var %s error", n.Name)
		default:
			r.add("%s %s", tok, n.Name) // a var of inferred type
		}
	}
}

// typeParams renders a type parameter list, or "" for none.
func (r *apiRenderer) typeParams(fl *ast.FieldList) string {
	if fl == nil {
		return ""
	}
	var ps []string
	for _, f := range fl.List {
		for _, n := range f.Names {
			ps = append(ps, n.Name+" "+r.expr(f.Type))
		}
	}
	return "[" + strings.Join(ps, ", ") + "]"
}

// typeSpec renders an exported type, with its exported fields or methods.
func (r *apiRenderer) typeSpec(s *ast.TypeSpec) {
	if !s.Name.IsExported() {
		return
	}
	if s.Assign.IsValid() {
		r.add("type %s%s = %s", s.Name.Name, r.typeParams(s.TypeParams), r.typ(s.Type))
		return
	}
	name := s.Name.Name + r.typeParams(s.TypeParams)
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
		unexported := false
		for _, m := range t.Methods.List {
			ft, ok := m.Type.(*ast.FuncType)
			if !ok {
				r.add("type %s interface, embedded %s", name, r.expr(m.Type))
				continue
			}
			for _, n := range m.Names {
				if !n.IsExported() {
					unexported = true
					continue
				}
				methods = append(methods, n.Name)
				r.add("type %s interface, %s%s", name, n.Name, r.signature(ft))
			}
		}
		if unexported {
			// No implementation outside the package is possible: that is API.
			methods = append(methods, "unexported methods")
			r.add("type %s interface, unexported methods", name)
		}
		r.add("type %s interface { %s }", name, strings.Join(methods, ", "))
	default:
		r.add("type %s %s", name, r.typ(s.Type))
	}
}
