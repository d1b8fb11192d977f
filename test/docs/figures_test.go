package docs

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/headlessdns/headless/internal/testkit"
)

// A figure is a number with a unit of measurement, such as "84790 qps",
// "1.1ms", "64.6 MB", "0.45x" or "85k qps".
//
// The rule that TestFiguresFromBenchmarks checks: every figure in the prose
// of README.md and docs/*.md, and in the comments of deploy/*.yaml, is a
// figure of BENCHMARKS.md, written to any precision in any unit of the same
// kind. "11 us" stands for "10985 ns/op", "85k qps" for "84790 qps", but
// "50 us" does not stand for "41289 ns/op". Precisely: converted to the base
// unit (seconds, bytes, queries per second, allocations, ratio), the figure
// of BENCHMARKS.md lies within half a unit of the document's last digit.
//
// Not figures: what is inside code spans and fenced code blocks (settings
// such as `lameduck 5s`, commands, sample output), numbers without a unit
// ("10k services", "2 cores"), durations spelled out ("about 15 seconds",
// "5 minutes": the times a person waits, such as a first build, which
// BENCHMARKS.md does not measure), and the figures of facts below.

// facts are figures that the documents may quote although BENCHMARKS.md
// does not hold them, because they are not measurements: protocol sizes
// and the like, each with the reason.
var facts = map[string]string{
	"512 bytes":  "the size of a DNS message over UDP without EDNS (RFC 1035)",
	"1232 bytes": "dig's default EDNS buffer size",
	"1241 bytes": "the size of the seed's SRV answer over UDP, which the demo prints",
}

// unit is a unit of measurement: its kind and its size in the base unit of
// the kind.
type unit struct {
	kind string
	size float64
}

var units = map[string]unit{
	"ns": {"time", 1e-9}, "us": {"time", 1e-6}, "µs": {"time", 1e-6}, "ms": {"time", 1e-3}, "s": {"time", 1},
	"B": {"memory", 1}, "bytes": {"memory", 1},
	"KB": {"memory", 1e3}, "kB": {"memory", 1e3}, "MB": {"memory", 1e6}, "GB": {"memory", 1e9},
	"KiB": {"memory", 1 << 10}, "MiB": {"memory", 1 << 20}, "GiB": {"memory", 1 << 30},
	"Ki": {"memory", 1 << 10}, "Mi": {"memory", 1 << 20}, "Gi": {"memory", 1 << 30},
	"qps":    {"rate", 1},
	"allocs": {"allocations", 1}, "allocations": {"allocations", 1},
	"x": {"ratio", 1}, "%": {"percentage", 1},
}

// figureRE matches a figure: a number not inside a word, a version or a
// date, a k or M multiplier, an optional space and a unit. A unit that is a
// word must end there; "x" must follow the number directly, so that
// "10 services x 10 endpoints" is not a ratio.
var figureRE = regexp.MustCompile(`(?:^|[^\w.,:/-])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)([kM]?)(?:(x|%)|(\s?)(allocations|allocs|bytes|ns|us|µs|ms|s|KiB|MiB|GiB|Ki|Mi|Gi|KB|kB|MB|GB|B|qps))(?:$|[^\w.]|\.(?:\D|$))`)

// figure is a figure found in a document.
type figure struct {
	text  string  // as written, "50 us"
	value float64 // in the base unit
	half  float64 // half a unit of its last digit, in the base unit
	kind  string
	where string // file:line
	line  string // the line, for the messages
}

// parse returns the figures of one line of prose; the figures say that they
// come from where and the line original.
func parse(line, where, original string) []figure {
	var figs []figure
	for _, m := range figureRE.FindAllStringSubmatch(line, -1) {
		number, mult, space, name := m[1], m[2], m[4], m[3]+m[5]
		u := units[name]
		v, err := strconv.ParseFloat(strings.ReplaceAll(number, ",", ""), 64)
		if err != nil {
			continue
		}
		decimals := 0
		if i := strings.IndexByte(number, '.'); i >= 0 {
			decimals = len(number) - i - 1
		}
		scale := u.size
		switch mult {
		case "k":
			scale *= 1e3
		case "M":
			scale *= 1e6
		}
		figs = append(figs, figure{
			text:  number + mult + space + name,
			value: v * scale,
			half:  0.5 * math.Pow(10, -float64(decimals)) * scale,
			kind:  u.kind,
			where: where,
			line:  strings.TrimSpace(original),
		})
	}
	return figs
}

// codeSpanRE matches an inline code span.
var codeSpanRE = regexp.MustCompile("`[^`]*`")

// markdownProse returns the lines of a Markdown file with fenced code blocks
// and code spans blanked out.
func markdownProse(text string) []string {
	var lines []string
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case fence != "":
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			line = ""
		case strings.HasPrefix(trimmed, "```"), strings.HasPrefix(trimmed, "~~~"):
			fence = trimmed[:3]
			line = ""
		}
		lines = append(lines, codeSpanRE.ReplaceAllString(line, "``"))
	}
	return lines
}

// yamlComments returns the comments of a YAML file, line by line, with
// code spans blanked out: the text after a # that starts the line or
// follows a space.
func yamlComments(text string) []string {
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		comment := ""
		if i := strings.Index(line, "#"); i == 0 || (i > 0 && strings.Contains(" \t", line[i-1:i])) {
			comment = line[i+1:]
		}
		lines = append(lines, codeSpanRE.ReplaceAllString(comment, "``"))
	}
	return lines
}

// benchmarkFigures returns the figures of BENCHMARKS.md: those written with
// their unit anywhere in it, including its code; the first number of "A vs
// B unit"; and the numbers of a table column whose header ends in a unit
// ("kubernetes qps").
func benchmarkFigures(text string) []figure {
	var figs []figure
	var header []string
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("BENCHMARKS.md:%d", i+1)
		figs = append(figs, parse(line, where, line)...)
		for _, m := range vsRE.FindAllStringSubmatch(line, -1) {
			figs = append(figs, parse(m[1]+" "+m[3], where, line)...)
		}
		if !strings.HasPrefix(line, "|") {
			header = nil
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		switch {
		case header == nil:
			header = cells
		case strings.HasPrefix(strings.TrimSpace(cells[0]), "---"):
		default:
			for j, cell := range cells {
				cell = strings.TrimSpace(cell)
				if j >= len(header) || !numberRE.MatchString(cell) {
					continue
				}
				words := strings.Fields(header[j])
				if len(words) > 0 {
					figs = append(figs, parse(cell+" "+words[len(words)-1], where, line)...)
				}
			}
		}
	}
	return figs
}

var (
	vsRE     = regexp.MustCompile(`(\d+(?:\.\d+)?)\s+vs\s+(\d+(?:\.\d+)?)\s?([A-Za-zµ%]+)`)
	numberRE = regexp.MustCompile(`^\d+(?:\.\d+)?$`)
)

// document is a document that quotes figures: its lines and, line by line,
// its prose.
type document struct {
	lines, prose []string
}

// documents returns the documents that quote figures, by file name relative
// to root.
func documents(t *testing.T, root string) map[string]document {
	docs := map[string]document{}
	read := func(name string, prose func(string) []string) {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = document{lines: strings.Split(string(b), "\n"), prose: prose(string(b))}
	}
	read("README.md", markdownProse)
	for _, pattern := range []string{"docs/*.md", "deploy/*.yaml"} {
		names, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			rel, _ := filepath.Rel(root, name)
			rel = filepath.ToSlash(rel)
			if strings.HasSuffix(rel, ".yaml") {
				read(rel, yamlComments)
			} else {
				read(rel, markdownProse)
			}
		}
	}
	return docs
}

// TestFiguresFromBenchmarks checks that the documents quote only figures of
// BENCHMARKS.md (see the rule at figure).
func TestFiguresFromBenchmarks(t *testing.T) {
	root, err := testkit.Root()
	testkit.Require(t, err)
	b, err := os.ReadFile(filepath.Join(root, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	bench := benchmarkFigures(string(b))
	docs := documents(t, root)
	var names []string
	for name := range docs {
		names = append(names, name)
	}
	sort.Strings(names)
	bad := 0
	for _, name := range names {
		d := docs[name]
		for i, line := range d.prose {
			for _, f := range parse(line, fmt.Sprintf("%s:%d", name, i+1), d.lines[i]) {
				if _, ok := facts[f.text]; ok || found(f, bench) {
					continue
				}
				bad++
				t.Errorf("%s: %q is not a figure of BENCHMARKS.md%s\n\tin: %s", f.where, f.text, nearest(f, bench), f.line)
			}
		}
	}
	if bad > 0 {
		t.Logf("%d figures of the documents are not in BENCHMARKS.md. Quote the figure that BENCHMARKS.md has "+
			"(any unit, rounded: 10985 ns/op may be written 11 us or 11.0µs), drop the figure, put a setting or "+
			"command in a code span, or, for a figure that is a fact and not a measurement, add it to facts "+
			"in test/docs/figures_test.go with the reason.", bad)
	}
}

// found reports whether f is a figure of bench.
func found(f figure, bench []figure) bool {
	for _, b := range bench {
		if b.kind == f.kind && math.Abs(b.value-f.value) <= f.half*(1+1e-9) {
			return true
		}
	}
	return false
}

// nearest describes the figures of bench of f's kind that are closest to
// it, to say what the document may have meant.
func nearest(f figure, bench []figure) string {
	var same []figure
	seen := map[string]bool{}
	for _, b := range bench {
		if b.kind == f.kind && !seen[b.text] {
			seen[b.text] = true
			same = append(same, b)
		}
	}
	if len(same) == 0 {
		return fmt.Sprintf(" (it has no %s figure)", f.kind)
	}
	sort.Slice(same, func(i, j int) bool {
		return math.Abs(math.Log(same[i].value/f.value)) < math.Abs(math.Log(same[j].value/f.value))
	})
	var near []string
	for _, b := range same[:min(3, len(same))] {
		near = append(near, fmt.Sprintf("%s (%s)", b.text, b.where))
	}
	return "; nearest: " + strings.Join(near, ", ")
}

// TestUnmetTargetsInREADME checks that README.md states every target of
// BENCHMARKS.md that is not met, with its label and the ratio measured, as
// the Targets table has them.
func TestUnmetTargetsInREADME(t *testing.T) {
	root, err := testkit.Root()
	testkit.Require(t, err)
	f, err := os.Open(filepath.Join(root, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := bufio.NewScanner(f)
	rows := 0
	for s.Scan() {
		// | target | wanted | headless vs kubernetes | ratio | met |
		cells := strings.Split(strings.Trim(s.Text(), "| "), "|")
		if len(cells) != 5 || strings.TrimSpace(cells[4]) != "**no**" {
			continue
		}
		rows++
		target, wanted, ratio := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[3])
		for _, want := range []string{target, ratio} {
			if !strings.Contains(string(readme), want) {
				t.Errorf("README.md does not state the unmet target %q (wanted %s, measured %s): it has no %q", target, wanted, ratio, want)
			}
		}
	}
	if rows == 0 {
		t.Log("BENCHMARKS.md has no unmet target")
	}
}

// TestFigureRule checks the rule of TestFiguresFromBenchmarks on lines
// whose figures are known.
func TestFigureRule(t *testing.T) {
	bench := benchmarkFigures(`| target | wanted | headless vs kubernetes | ratio | met |
| --- | --- | --- | --- | --- |
| QPS, seed A | >= 3x kubernetes | 84790 vs 30495 qps | 2.78x | **no** |

| objects | VmRSS | p50 | start |
| --- | --- | --- | --- |
| 10000 services | 64.6 MB | 1.1ms | 10.133s |

| workload | kubernetes qps |
| --- | --- |
| seed A | 30496 |

` + "```" + `
BenchmarkServeDNS/seed-SRV/kubernetes-2  31048  41289 ns/op  30171 B/op  227 allocs/op
` + "```")
	for _, c := range []struct {
		prose string
		want  []string // the figures, and whether each is in bench: "+41 us"
	}{
		{"about 41 us and 227 allocations", []string{"+41 us", "+227 allocations"}},
		{"about 50 us, 0.04 ms", []string{"-50 us", "+0.04 ms"}},
		{"about 85k qps, 84,790 qps, 84790qps, 30496 qps and 80k qps", []string{"+85k qps", "+84,790 qps", "+84790qps", "+30496 qps", "-80k qps"}},
		{"2.78x, 2.8x, 3x and 2.7x", []string{"+2.78x", "+2.8x", "+3x", "-2.7x"}},
		{"65 MB, 64.6 MB, 64.60 MB, 64.61 MB, 30 KB and 31 KB", []string{"+65 MB", "+64.6 MB", "+64.60 MB", "-64.61 MB", "+30 KB", "-31 KB"}},
		{"1.1 ms, 1100 µs, 10s and 10.1s", []string{"+1.1 ms", "+1100 µs", "+10s", "+10.1s"}},
		{"45% headroom", []string{"-45%"}},
		{"v1.15.0, Kubernetes 1.22, 10k services x 10 endpoints, 2 cores, port 53, 10.96.0.10, 15 seconds, 8.5s.", []string{"-8.5s"}},
	} {
		var got []string
		for _, f := range parse(c.prose, "doc:1", c.prose) {
			mark := "-"
			if found(f, bench) {
				mark = "+"
			}
			got = append(got, mark+f.text)
		}
		if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
			t.Errorf("%q: figures %q, want %q", c.prose, got, c.want)
		}
	}
	prose := markdownProse("Set `startup_timeout 5s` for 5 us.\n~~~\n;; Query time: 3 msec, 1241 bytes\n~~~\nthen 7 ms")
	var got []string
	for _, line := range prose {
		for _, f := range parse(line, "doc", line) {
			got = append(got, f.text)
		}
	}
	if want := "5 us, 7 ms"; strings.Join(got, ", ") != want {
		t.Errorf("figures outside code %q, want %q", got, want)
	}
	if got := yamlComments("memory: 128Mi # 60 MB, `26Mi`\n# 30 MB\n"); got[0] != " 60 MB, ``" || got[1] != " 30 MB" {
		t.Errorf("yamlComments = %q", got)
	}
}
