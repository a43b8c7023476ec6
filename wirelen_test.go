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
//     binary.LittleEndian.Uint32, and any variable assigned one, or a copy
//     of one (m := n, m := uint64(n)); a copy made after its source was
//     bounded is bounded.
//   - Using it as a size means converting it to int or int32, passing it to
//     make, or using it in an index or slice expression.
//   - A bound is an upper bound that exits: a comparison with the length on
//     its larger side (n > max, n >= max, max < n, max <= n), made without
//     converting it to int or int32 (uint64(n) > uint64(max), n > 1<<18), as
//     the condition of an if, or in the list of a switch case, whose body
//     ends in return, panic, break, continue or goto; placed before the use
//     in the same function. A lower bound, a loop condition or a guard whose
//     branch goes on does not bound the length.
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
		{"a lower bound only", `n := binary.BigEndian.Uint32(hdr); if n < 2 { return }; _ = make([]byte, int(n))`, 2},
		{"a loop over the length", `n := binary.BigEndian.Uint32(hdr); for i := uint32(0); i < n; i++ {}; _ = make([]byte, int(n))`, 2},
		{"copied to another name", `n := binary.BigEndian.Uint32(hdr); m := n; _ = make([]byte, int(m))`, 2},
		{"copied after the bound", `n := binary.BigEndian.Uint32(hdr); if n > 10 { return }; m := uint64(n); _ = make([]byte, m)`, 0},
		{"a guard whose branch goes on", `n := binary.BigEndian.Uint32(hdr); if n > 0 { _ = make([]byte, int(n)) }`, 2},
		{"bounded in a switch case", `n := binary.BigEndian.Uint32(hdr); switch { case uint64(n) > uint64(limit), n == 0: return }; _ = buf[:n]`, 0},
		{"bounded from the other side", `n := binary.BigEndian.Uint32(hdr); if uint64(limit) < uint64(n) { panic("too long") }; _ = buf[:n]`, 0},
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
	// The variables that hold a wire length: assigned one, or a copy of one
	// (to a fixed point, for copies of copies), with where each copy was
	// made and from what.
	vars := map[string]bool{}
	type copyOf struct {
		from string
		at   token.Pos
	}
	var copies []struct {
		name string
		copyOf
	}
	for changed := true; changed; {
		changed = false
		mark := func(id *ast.Ident, value ast.Expr) {
			if vars[id.Name] {
				return
			}
			if containsWireCall(value) {
				vars[id.Name], changed = true, true
			} else if from := copiedName(value); vars[from] {
				vars[id.Name], changed = true, true
				copies = append(copies, struct {
					name string
					copyOf
				}{id.Name, copyOf{from, id.Pos()}})
			}
		}
		ast.Inspect(body, func(n ast.Node) bool {
			switch s := n.(type) {
			case *ast.AssignStmt:
				if len(s.Lhs) == len(s.Rhs) {
					for i, rhs := range s.Rhs {
						if id, ok := s.Lhs[i].(*ast.Ident); ok {
							mark(id, rhs)
						}
					}
				}
			case *ast.ValueSpec:
				if len(s.Names) == len(s.Values) {
					for i, v := range s.Values {
						mark(s.Names[i], v)
					}
				}
			}
			return true
		})
	}

	// Where each is bounded: the upper bounds that exit.
	bounds := map[string][]token.Pos{}
	addBounds := func(cond ast.Expr) {
		ast.Inspect(cond, func(n ast.Node) bool {
			be, ok := n.(*ast.BinaryExpr)
			if !ok {
				return true
			}
			var large ast.Expr
			switch be.Op {
			case token.GTR, token.GEQ:
				large = be.X
			case token.LSS, token.LEQ:
				large = be.Y
			default:
				return true
			}
			for name := range vars {
				if mentions(large, name) && !convertsToInt(be, name) {
					bounds[name] = append(bounds[name], be.Pos())
				}
			}
			return true
		})
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.IfStmt:
			if exits(s.Body.List) {
				addBounds(s.Cond)
			}
		case *ast.CaseClause:
			if exits(s.Body) {
				for _, e := range s.List {
					addBounds(e)
				}
			}
		}
		return true
	})
	bounded := func(name string, at token.Pos) bool {
		return slices.ContainsFunc(bounds[name], func(p token.Pos) bool { return p < at })
	}
	// A copy made after its source was bounded is bounded from there on.
	for again := true; again; {
		again = false
		for _, cp := range copies {
			if bounded(cp.from, cp.at) && !bounded(cp.name, cp.at+1) {
				bounds[cp.name] = append(bounds[cp.name], cp.at)
				again = true
			}
		}
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

// copiedName returns the name that e copies, as an identifier or a
// conversion of one (n, uint64(n)), or "".
func copiedName(e ast.Expr) string {
	if call, ok := e.(*ast.CallExpr); ok && len(call.Args) == 1 {
		if _, isType := call.Fun.(*ast.Ident); isType {
			e = call.Args[0]
		}
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// exits reports whether a block of statements ends by leaving it: in a
// return, a panic, a break, a continue or a goto.
func exits(stmts []ast.Stmt) bool {
	if len(stmts) == 0 {
		return false
	}
	switch s := stmts[len(stmts)-1].(type) {
	case *ast.ReturnStmt, *ast.BranchStmt:
		return true
	case *ast.ExprStmt:
		if call, ok := s.X.(*ast.CallExpr); ok {
			id, ok := call.Fun.(*ast.Ident)
			return ok && id.Name == "panic"
		}
	}
	return false
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
