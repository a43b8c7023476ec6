package jsonconn_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestSnippetsCompile compiles every Go block of README.md and docs/*.md (a
// fenced code block whose info string's first word is "go"), so that what a
// newcomer pastes compiles, and a snippet that stops compiling fails the
// tests. A block is one of two kinds:
//
//   - A file: a block that starts with a package clause (after comments) is
//     compiled as it stands, as a package of its own.
//   - A fragment: any other block is the body of a
//     func(ctx context.Context) error, compiled in a package that also holds
//     snippetPreamble, which declares what the prose around the fragments
//     takes as given (srv, myHandler, Request, Response, handle). After the
//     body comes a "return nil", for a fragment that ends where the reader's
//     function would go on. Nothing else is added: a variable a fragment
//     declares and does not use is an error, as in the reader's own code.
//
// A fragment has no import declarations; the test adds them. A package the
// fragment refers to by a name in snippetImports (standard packages whose
// name is not ambiguous, and jsonconn) is imported from there. Any other
// import the fragment names in a comment line of its own before its first
// statement, written as the import declaration a reader would write:
//
//	// import "math/rand/v2"
//	// import json "github.com/goccy/go-json"
//
// (the name is needed only where it is not the path's last element, or the
// one before a /vN). Such a line also tells the reader what to import.
//
// A block compiles in the repository's root module, unless its info string
// names another module of the repository by its directory, as in
// "```go module=benchmarks/codec": then it compiles with that module's
// requirements. There is no way to exempt a Go block; text that is not meant
// to compile goes in a block that is not marked go.
//
// The blocks of each module are written to a temporary module outside the
// repository whose go.mod is that module's, renamed "snippets", with the
// module itself (and any relative replace) pointing at its directory here, and
// its go.sum. They are compiled there with "go build ./...", then checked with
// "go vet", by the go command that runs this test (go test puts its
// GOROOT/bin first in PATH) in this test's environment, GOTOOLCHAIN, GOARCH
// and GOFLAGS included. A //line directive before each block makes every
// error name the markdown file and the line in it.
//
// The root module's build also compiles snippetSelfCheck, which must fail
// with exactly snippetSelfCheckErrors: proof that an unused variable, the bug
// that kept the TLS block of docs/operations.md from compiling, fails the
// test, and that errors point at the markdown.
func TestSnippetsCompile(t *testing.T) {
	t.Parallel()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command compiles the snippets, and it is not in PATH: %v", err)
	}
	root, err := os.Getwd() // go test runs a package's tests in its directory
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string][]snippet{".": nil}
	for _, path := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := goBlocks(path, string(text))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			modules[b.module] = append(modules[b.module], b)
		}
	}
	if len(modules["."]) == 0 {
		t.Fatal("README.md and docs/*.md have no Go block: the extraction is broken")
	}
	selfCheck, err := goBlocks(filepath.Join(root, "selfcheck.md"), snippetSelfCheck)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var names []string
	for m := range modules {
		names = append(names, m)
	}
	sort.Strings(names)
	for i, m := range names {
		dir := filepath.Join(tmp, strconv.Itoa(i))
		var check []snippet
		if m == "." {
			check = selfCheck
		}
		if err := writeSnippetModule(dir, root, m, modules[m], check); err != nil {
			t.Fatal(err)
		}
		compileSnippets(t, goCmd, dir, root, m, check != nil)
	}
}

// snippetPreamble declares what the fragments take as given, in the package
// that holds them: %s is the package's name.
const snippetPreamble = `package %s

import (
	"context"

	"github.com/jsonconn/jsonconn"
)

var (
	srv       *jsonconn.Server // a Server set up as in the README
	myHandler jsonconn.Handler // the application's handler
)

// Request and Response are the application's messages.
type Request struct {
	Op string
}

type Response struct {
	Result string
}

// handle answers a request.
func handle(ctx context.Context, req Request) Response {
	return Response{Result: req.Op}
}
`

// snippetImports maps the package names a fragment may use without an
// import comment to their paths.
var snippetImports = map[string]string{
	"bufio":    "bufio",
	"bytes":    "bytes",
	"context":  "context",
	"errors":   "errors",
	"expvar":   "expvar",
	"fmt":      "fmt",
	"io":       "io",
	"json":     "encoding/json",
	"jsonconn": "github.com/jsonconn/jsonconn",
	"jsonrpc":  "net/rpc/jsonrpc",
	"log":      "log",
	"net":      "net",
	"os":       "os",
	"rpc":      "net/rpc",
	"signal":   "os/signal",
	"slog":     "log/slog",
	"strings":  "strings",
	"sync":     "sync",
	"time":     "time",
	"tls":      "crypto/tls",
	"x509":     "crypto/x509",
}

// snippetSelfCheck is a markdown file that the root module's build compiles
// beside the real ones, as if it were selfcheck.md at the repository's root.
// Its first block uses an import comment and must compile. Its second is the
// client half of the TLS block that docs/operations.md had until issue 17,
// which declared c and err and used neither.
const snippetSelfCheck = "# Self-check\n" +
	"\n" +
	"```go\n" +
	"// import \"math/rand/v2\"\n" +
	"time.Sleep(rand.N(10 * time.Millisecond)) // full jitter\n" +
	"```\n" +
	"\n" +
	"```go\n" +
	"d := &jsonconn.Dialer{TLSConfig: &tls.Config{ /* RootCAs, ServerName, ... */ }}\n" +
	"c, err := d.DialConn(ctx, \"tcp\", \"service.internal:7443\")\n" +
	"```\n"

// snippetSelfCheckErrors is what compiling snippetSelfCheck must report.
var snippetSelfCheckErrors = []string{
	"selfcheck.md:10:1: declared and not used: c",
	"selfcheck.md:10:4: declared and not used: err",
}

// A snippet is a Go block of a markdown file.
type snippet struct {
	path   string // the markdown file's absolute path
	line   int    // the line of the block's first line of code, from 1
	module string // the directory of the module it compiles in, relative to the root
	code   string // the block's lines, each ending in "\n"
}

// fenceRE matches the opening line of a fenced code block: its indent, its
// fence and its info string.
var fenceRE = regexp.MustCompile("^( {0,3})(`{3,}|~{3,})(.*)$")

// goBlocks returns the Go blocks of the markdown text of the file at path.
func goBlocks(path, text string) ([]snippet, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var blocks []snippet
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil || (m[2][0] == '`' && strings.Contains(m[3], "`")) {
			continue
		}
		indent, fence, info := len(m[1]), m[2], strings.Fields(m[3])
		start := i + 1
		var code strings.Builder
		for i++; ; i++ {
			if i == len(lines) {
				return nil, fmt.Errorf("%s:%d: the code block is not closed", path, start)
			}
			if l := strings.TrimLeft(lines[i], " "); len(lines[i])-len(l) <= 3 && strings.HasPrefix(l, fence) &&
				strings.TrimRight(strings.TrimRight(l, " \t"), fence[:1]) == "" {
				break // a closing fence: at least as long as the opening one, nothing after it
			}
			l := lines[i]
			for n := 0; n < indent && strings.HasPrefix(l, " "); n++ {
				l = l[1:]
			}
			code.WriteString(l + "\n")
		}
		if len(info) == 0 || info[0] != "go" {
			continue
		}
		b := snippet{path: path, line: start + 1, module: ".", code: code.String()}
		for _, attr := range info[1:] {
			dir, ok := strings.CutPrefix(attr, "module=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown attribute %q in the info string (the one known is module=DIR)", path, start, attr)
			}
			b.module = filepath.Clean(filepath.FromSlash(dir))
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// writeSnippetModule writes into dir a module that holds the blocks, to be
// compiled in the module whose directory is module, relative to root, and
// the blocks of selfCheck, if any, in a package of their own.
func writeSnippetModule(dir, root, module string, blocks, selfCheck []snippet) error {
	modDir := filepath.Join(root, module)
	gomod, err := os.ReadFile(filepath.Join(modDir, "go.mod"))
	if err != nil {
		return fmt.Errorf("a Go block names module=%s, which has no go.mod: %w", module, err)
	}
	gosum, err := os.ReadFile(filepath.Join(modDir, "go.sum"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	mod, err := snippetGoMod(string(gomod), modDir)
	if err != nil {
		return err
	}
	files := map[string]string{"go.mod": mod, "go.sum": string(gosum)}
	for _, pkg := range []struct {
		name   string
		blocks []snippet
	}{{"fragments", blocks}, {"selfcheck", selfCheck}} {
		fragments := 0
		for i, b := range pkg.blocks {
			name := fmt.Sprintf("%s_%d", strings.NewReplacer("/", "_", "\\", "_", ".", "_", ":", "_").Replace(relPath(root, b.path)), b.line)
			if isGoFile(b.code) {
				files[filepath.Join("file_"+name, "snippet.go")] = lineDirective(b.path, b.line) + b.code
				continue
			}
			fragments++
			files[filepath.Join(pkg.name, name+".go")] = fragmentFile(pkg.name, i, b)
		}
		if fragments > 0 {
			files[filepath.Join(pkg.name, "preamble.go")] = fmt.Sprintf(snippetPreamble, pkg.name)
		}
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// snippetGoMod returns the go.mod that the Go blocks of the module in
// modDir, whose go.mod is gomod, compile under: gomod renamed "snippets", its
// replacements by relative paths made absolute, and requiring the module
// itself, replaced by modDir.
func snippetGoMod(gomod, modDir string) (string, error) {
	m := moduleLineRE.FindStringSubmatchIndex(gomod)
	if m == nil {
		return "", fmt.Errorf("%s: no module line", filepath.Join(modDir, "go.mod"))
	}
	path := gomod[m[2]:m[3]]
	gomod = gomod[:m[0]] + "module snippets" + gomod[m[1]:]
	gomod = relativeReplaceRE.ReplaceAllStringFunc(gomod, func(s string) string {
		rel := strings.TrimSpace(strings.TrimPrefix(s, "=>"))
		return "=> " + strconv.Quote(filepath.Join(modDir, filepath.FromSlash(rel)))
	})
	return gomod + fmt.Sprintf("\nrequire %s v0.0.0\n\nreplace %[1]s => %s\n", path, strconv.Quote(modDir)), nil
}

var (
	moduleLineRE      = regexp.MustCompile(`(?m)^module[ \t]+(\S+)[ \t]*$`)
	relativeReplaceRE = regexp.MustCompile(`(?m)=>[ \t]*(\.\.?(?:/\S*)?)[ \t]*$`)
)

// isGoFile reports whether code starts with a package clause.
func isGoFile(code string) bool {
	_, err := parser.ParseFile(token.NewFileSet(), "", code, parser.PackageClauseOnly)
	return err == nil
}

// lineDirective returns a //line directive that makes the next line line 1
// of the file at path, column 1.
func lineDirective(path string, line int) string {
	return fmt.Sprintf("//line %s:%d:1\n", path, line)
}

// importCommentRE matches a fragment's import comment: the package's name,
// if given, and its path.
var importCommentRE = regexp.MustCompile(`^//\s*import\s+(?:([\pL_][\pL\pN_]*)\s+)?("[^"]+")\s*$`)

// majorVersionRE matches the last element of an import path that is a major
// version (math/rand/v2), not the package's name.
var majorVersionRE = regexp.MustCompile(`^v[0-9]+$`)

// fragmentFile returns the file that compiles fragment b as the body of the
// function snippetN in package pkg, with the imports the fragment needs.
func fragmentFile(pkg string, n int, b snippet) string {
	var imports strings.Builder
	named := map[string]bool{"context": true}
	lines := strings.Split(b.code, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		m := importCommentRE.FindStringSubmatch(l)
		if m == nil {
			if l == "" || strings.HasPrefix(l, "//") {
				continue
			}
			break
		}
		name := m[1]
		if name == "" {
			p, _ := strconv.Unquote(m[2])
			elems := strings.Split(p, "/")
			name = elems[len(elems)-1]
			if len(elems) > 1 && majorVersionRE.MatchString(name) {
				name = elems[len(elems)-2]
			}
		}
		named[name] = true
		fmt.Fprintf(&imports, "%s%s\n", lineDirective(b.path, b.line+i), strings.TrimSpace(m[1]+" "+m[2]))
	}
	for _, name := range packageNames(b.code) {
		if path, ok := snippetImports[name]; ok && !named[name] {
			fmt.Fprintf(&imports, "\t%q\n", path)
		}
	}
	return fmt.Sprintf("package %s\n\nimport (\n\t\"context\"\n%s)\n\nfunc snippet%d(ctx context.Context) error {\n%s%s\treturn nil\n}\n",
		pkg, imports.String(), n, lineDirective(b.path, b.line), b.code)
}

// packageNames returns the names the fragment code uses as the X of a
// selector X.Sel and does not declare itself: the packages it refers to. It
// returns nil for code that does not parse, which the compiler then reports.
func packageNames(code string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\nfunc _() {\n"+code+"\n}\n", parser.SkipObjectResolution)
	if err != nil {
		return nil
	}
	used, declared := map[string]bool{}, map[string]bool{}
	declare := func(ids ...*ast.Ident) {
		for _, id := range ids {
			declared[id.Name] = true
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, e := range n.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						declare(id)
					}
				}
			}
		case *ast.RangeStmt:
			if n.Tok == token.DEFINE {
				for _, e := range []ast.Expr{n.Key, n.Value} {
					if id, ok := e.(*ast.Ident); ok {
						declare(id)
					}
				}
			}
		case *ast.ValueSpec:
			declare(n.Names...)
		case *ast.TypeSpec:
			declare(n.Name)
		case *ast.Field:
			declare(n.Names...)
		}
		return true
	})
	var names []string
	for name := range used {
		if !declared[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// compileSnippets builds the snippet module in dir, written for the module
// whose directory is module, and vets the packages that built. With
// selfCheck, the package selfcheck must fail with snippetSelfCheckErrors.
func compileSnippets(t testing.TB, goCmd, dir, root, module string, selfCheck bool) {
	t.Helper()
	where := "the root module"
	if module != "." {
		where = "module " + filepath.ToSlash(module)
	}
	out, err := runGo(goCmd, dir, "build", "./...")
	lines, byPkg := goOutput(out, dir, root)
	if len(byPkg[""]) > 0 || (err != nil && len(byPkg) == 0) {
		t.Fatalf("go build of the Go blocks of the docs, in a copy of %s: %v\n\t%s", where, err, strings.Join(lines, "\n\t"))
	}
	if selfCheck {
		got := byPkg["snippets/selfcheck"]
		if strings.Join(got, "\n") != strings.Join(snippetSelfCheckErrors, "\n") {
			t.Errorf("the self-check's build reported\n\t%s\nwant\n\t%s\nso the test may miss a Go block that does not compile",
				strings.Join(got, "\n\t"), strings.Join(snippetSelfCheckErrors, "\n\t"))
		}
	}
	var bad, vet []string
	for _, p := range goPackages(dir) {
		if p == "selfcheck" {
			continue
		}
		if errs, failed := byPkg["snippets/"+p]; failed {
			bad = append(bad, errs...)
		} else {
			vet = append(vet, "./"+p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("Go blocks of the docs do not compile, in %s (TestSnippetsCompile says how they are compiled):\n\t%s",
			where, strings.Join(bad, "\n\t"))
	}
	if len(vet) == 0 {
		return
	}
	// -unreachable=false: the "return nil" after each fragment follows the
	// fragment's own return, if it has one.
	out, err = runGo(goCmd, dir, append([]string{"vet", "-unreachable=false"}, vet...)...)
	if err != nil {
		lines, _ := goOutput(out, dir, root)
		t.Errorf("go vet finds fault with Go blocks of the docs, in %s: %v\n\t%s", where, err, strings.Join(lines, "\n\t"))
	}
}

// runGo runs the go command in dir with the environment of this test, and
// returns its combined output.
func runGo(goCmd, dir string, args ...string) (string, error) {
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// goPackages returns the directories of dir that hold Go files.
func goPackages(dir string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "*.go"))
	seen := map[string]bool{}
	var pkgs []string
	for _, m := range matches {
		if p := filepath.Base(filepath.Dir(m)); !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// goPositionRE matches a line of the go command's output that starts with a
// position: its prefix ("vet: "), its file, and the rest.
var goPositionRE = regexp.MustCompile(`^(vet: )?(.+?)(:\d+:\d+: .*)$`)

// goOutput returns the lines of the output of go build or go vet, run in
// dir, less the "# package" headers and the "go: downloading" notes, and
// those lines by the package whose header they follow ("" for none). It
// writes the file of a position relative to root where it is inside root, so
// that an error in a Go block names its markdown file as the repository does.
func goOutput(out, dir, root string) (lines []string, byPkg map[string][]string) {
	byPkg = map[string][]string{}
	pkg := ""
	for _, l := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(l, "# "); ok {
			pkg = name
			if _, ok := byPkg[pkg]; !ok {
				byPkg[pkg] = nil // a header alone still names a package that failed
			}
			continue
		}
		if l == "" || strings.HasPrefix(l, "go: downloading ") {
			continue
		}
		if m := goPositionRE.FindStringSubmatch(l); m != nil {
			file := m[2]
			if !filepath.IsAbs(file) {
				file = filepath.Join(dir, file)
			}
			l = m[1] + relPath(root, file) + m[3]
		}
		lines = append(lines, l)
		byPkg[pkg] = append(byPkg[pkg], l)
	}
	return lines, byPkg
}

// relPath returns path relative to root, with forward slashes, if it is
// inside root, and path itself otherwise.
func relPath(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return filepath.ToSlash(rel)
}
