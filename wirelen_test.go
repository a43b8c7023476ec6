package jsonconn_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A frame's length is a uint32 on the wire, and an int is 32 bits on 386,
// arm and the other 32-bit platforms: int(0xFFFFFFFF) is -1 there, which
// passes an "n > max" check and then panics make or a slice expression (CI
// once failed only on hosts that run 386 binaries for this). The 386 tests
// run only where the host can execute them, so this check runs everywhere:
// it reads every Go file of the repository and reports each place where a
// wire length is used as a size before it was compared with a bound in its
// own unsigned type.
//
// What counts, with go/ast alone (no type information):
//
//   - A wire length is the result of binary.BigEndian.Uint32 or
//     binary.LittleEndian.Uint32, and any variable assigned one.
//   - Using it as a size means converting it to int or int32, passing it to
//     make, or using it in an index or slice expression.
//   - A bound is a comparison (<, <=, >, >=) that mentions the variable and
//     does not convert it to int or int32 (uint64(n) > uint64(max), n > 1<<18),
//     placed before the use in the same function.
//   - Building a length from bytes in an int (int(b[0])<<24 | ...) is always
//     reported: the shift overflows a 32-bit int. Use binary.BigEndian.Uint32.
//
// The rule is positional, not a proof: a bound in a branch that does not
// guard the use would satisfy it. It exists to make the mistake hard to
// make, not impossible to hide.
func TestWireLengthsBoundedBeforeSizeUse(t *testing.T) {
	var problems []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ps, err := unboundedWireLengths(path, src)
		if err != nil {
			return err
		}
		problems = append(problems, ps...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestWireLengthCheckFindsEachMistake runs the check of
// TestWireLengthsBoundedBeforeSizeUse over each mistake it must find and
// over the shapes it must accept, so that it cannot pass by finding nothing.
func TestWireLengthCheckFindsEachMistake(t *testing.T) {
	tests := []struct {
		name, body string
		want       int // problems reported
	}{
		{"int of the call", `n := int(binary.BigEndian.Uint32(hdr)); _ = n`, 1},
		{"int32 of the call", `n := int32(binary.LittleEndian.Uint32(hdr)); _ = n`, 1},
		{"make of the call", `_ = make([]byte, binary.BigEndian.Uint32(hdr))`, 1},
		{"int of an unbounded variable", `n := binary.BigEndian.Uint32(hdr); _ = make([]byte, int(n))`, 2},
		{"compared as an int", `n := binary.BigEndian.Uint32(hdr); if int(n) > limit { return }; _ = make([]byte, n)`, 2},
		{"bound after the use", `n := binary.BigEndian.Uint32(hdr); p := buf[4:4+n]; if n > 10 { return }; _ = p`, 1},
		{"assigned later", `var n uint32; n = binary.BigEndian.Uint32(hdr); _ = buf[:n]`, 1},
		{"bytes shifted in an int", `n := int(hdr[0])<<24 | int(hdr[1])<<16; _ = n`, 1},
		{"bounded as uint64", `n := binary.BigEndian.Uint32(hdr); if uint64(n) > uint64(limit) { return }; _ = make([]byte, int(n)); _ = buf[:n]`, 0},
		{"bounded as uint32", `n := binary.BigEndian.Uint32(hdr); if n > 1<<18 { return }; _ = headerLen + int(n)`, 0},
		{"not a size", `n := binary.BigEndian.Uint32(hdr); _ = int64(n); _ = uint64(n) + 4`, 0},
		{"bytes shifted in a uint32", `n := uint32(hdr[0])<<24 | uint32(hdr[1])<<16; _ = n`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "package p\n\nfunc f(hdr, buf []byte, limit int) {\n" + tt.body + "\n}\n"
			got, err := unboundedWireLengths("x.go", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("got %d problems, want %d:\n%s", len(got), tt.want, strings.Join(got, "\n"))
			}
		})
	}
}

// unboundedWireLengths returns a line for each use of a wire length as a
// size, in the Go source src, that TestWireLengthsBoundedBeforeSizeUse
// rejects.
func unboundedWireLengths(path string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var problems []string
	report := func(n ast.Node, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", fset.Position(n.Pos()), fmt.Sprintf(format, args...)))
	}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		checkWireLengths(fn.Body, report)
	}
	return problems, nil
}

// checkWireLengths applies the rule to one function body.
func checkWireLengths(body *ast.BlockStmt, report func(ast.Node, string, ...any)) {
	// The variables that hold a wire length, and where each is bounded.
	vars := map[string]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			if len(s.Lhs) == len(s.Rhs) {
				for i, rhs := range s.Rhs {
					if id, ok := s.Lhs[i].(*ast.Ident); ok && containsWireCall(rhs) {
						vars[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			if len(s.Names) == len(s.Values) {
				for i, v := range s.Values {
					if containsWireCall(v) {
						vars[s.Names[i].Name] = true
					}
				}
			}
		}
		return true
	})
	bounds := map[string][]token.Pos{}
	ast.Inspect(body, func(n ast.Node) bool {
		be, ok := n.(*ast.BinaryExpr)
		if !ok {
			return true
		}
		switch be.Op {
		case token.LSS, token.LEQ, token.GTR, token.GEQ:
			for name := range vars {
				if (mentions(be.X, name) || mentions(be.Y, name)) && !convertsToInt(be, name) {
					bounds[name] = append(bounds[name], be.Pos())
				}
			}
		}
		return true
	})
	bounded := func(name string, at token.Pos) bool {
		return slices.ContainsFunc(bounds[name], func(p token.Pos) bool { return p < at })
	}

	// sizeUse reports e, used as a size at use, if it holds a wire length
	// not bounded before.
	sizeUse := func(use ast.Node, e ast.Expr, what string) {
		if containsWireCall(e) {
			report(use, "%s of a wire length read in place: bound it as a uint32 (uint64(n) > uint64(max)) before using it as a size", what)
			return
		}
		for name := range vars {
			if mentions(e, name) && !bounded(name, use.Pos()) {
				report(use, "%s of the wire length %s before any bound on it: compare it as a uint32 (uint64(%s) > uint64(max)) first", what, name, name)
			}
		}
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch e := n.(type) {
		case *ast.CallExpr:
			if isIntConversion(e) {
				sizeUse(e, e.Args[0], "int conversion")
			}
			if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "make" {
				for _, a := range e.Args[1:] {
					sizeUse(e, a, "make")
				}
			}
		case *ast.IndexExpr:
			sizeUse(e, e.Index, "index")
		case *ast.SliceExpr:
			for _, x := range []ast.Expr{e.Low, e.High, e.Max} {
				if x != nil {
					sizeUse(e, x, "slice bound")
				}
			}
		case *ast.BinaryExpr:
			if call, ok := e.X.(*ast.CallExpr); ok && e.Op == token.SHL && isIntConversion(call) {
				if lit, ok := e.Y.(*ast.BasicLit); ok && lit.Kind == token.INT && atoi(lit.Value) >= 24 {
					report(e, "a length built from bytes in an int overflows on 32-bit platforms: use binary.BigEndian.Uint32")
				}
			}
		}
		return true
	})
}

// atoi returns the value of a decimal integer literal, or -1.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// containsWireCall reports whether e calls binary.BigEndian.Uint32 or
// binary.LittleEndian.Uint32.
func containsWireCall(e ast.Node) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return !found
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Uint32" {
			return true
		}
		order, ok := sel.X.(*ast.SelectorExpr)
		if !ok || (order.Sel.Name != "BigEndian" && order.Sel.Name != "LittleEndian") {
			return true
		}
		if pkg, ok := order.X.(*ast.Ident); ok && pkg.Name == "binary" {
			found = true
		}
		return !found
	})
	return found
}

// mentions reports whether e refers to the identifier name.
func mentions(e ast.Node, name string) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

// isIntConversion reports whether call converts one value to int or int32,
// the types that cannot hold every uint32 on a 32-bit platform.
func isIntConversion(call *ast.CallExpr) bool {
	id, ok := call.Fun.(*ast.Ident)
	return ok && (id.Name == "int" || id.Name == "int32") && len(call.Args) == 1
}

// convertsToInt reports whether e converts the identifier name to int or
// int32 somewhere.
func convertsToInt(e ast.Node, name string) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && isIntConversion(call) && mentions(call.Args[0], name) {
			found = true
		}
		return !found
	})
	return found
}
