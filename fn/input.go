package fn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Everything the function reads passes through one budget, which also watches the bytes
// for what the YAML reader would pass over in silence.

// maxTokens bounds the structural characters (newlines, ',', ':', '[', '{') of all inputs
// together: every YAML node needs at least one nearby, and nodes, not bytes, are what
// the reader holds in memory (about a kilobyte each). A render of 280,000 resources has
// some 20 million; dense flow sequences reach that in 40 MB, far under the byte cap.
var maxTokens int64 = 40_000_000

// inputBudget bounds the bytes and nodes read from all inputs together.
type inputBudget struct {
	left     int64
	tokens   int64
	exceeded string // the input that went over
	why      string
	problem  error // a document the reader would drop or misread
}

func (b *inputBudget) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on close
	data, err := io.ReadAll(b.reader(f, path))
	if err := b.err(); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

func (b *inputBudget) reader(r io.Reader, name string) io.Reader {
	return &budgetReader{r: r, b: b, name: name, line: 1, envelope: map[string]int{}}
}

func (b *inputBudget) err() error {
	switch {
	case b.exceeded != "" && b.why == "tokens":
		return fmt.Errorf("%s: input has more than %d YAML nodes (newlines, ',', ':', '[' and '{') in total, more than "+
			"capa-imds holds in memory; split the render", b.exceeded, maxTokens)
	case b.exceeded != "":
		return fmt.Errorf("%s: input is larger than capa-imds's limit of %d MiB in total; split the render", b.exceeded, maxInputBytes>>20)
	}
	return b.problem
}

var errInputTooLarge = errors.New("input too large")

type budgetReader struct {
	r    io.Reader
	b    *inputBudget
	name string

	// Line state, for documents the YAML reader would lose.
	line      int
	head      []byte // the current line's first bytes
	endMarker int    // line of a "..." end marker not yet followed by "---", or 0
	envelope  map[string]int
}

// structural marks the bytes counted against maxTokens.
var structural = [256]bool{'\n': true, ',': true, ':': true, '[': true, '{': true}

func (br *budgetReader) Read(p []byte) (int, error) {
	if br.b.left <= 0 {
		// Stop only if there really is more: input of exactly the limit is fine.
		var one [1]byte
		if n, _ := br.r.Read(one[:]); n > 0 {
			br.b.exceeded = br.name
			return 0, errInputTooLarge
		}
		br.endOfInput()
		return 0, io.EOF
	}
	if int64(len(p)) > br.b.left {
		p = p[:br.b.left]
	}
	n, err := br.r.Read(p)
	br.b.left -= int64(n)
	br.scan(p[:n])
	if br.b.tokens > maxTokens {
		br.b.exceeded, br.b.why = br.name, "tokens"
		return 0, errInputTooLarge
	}
	if err == io.EOF {
		br.endOfInput()
	}
	return n, err
}

func (br *budgetReader) scan(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		for _, c := range chunk {
			if structural[c] {
				br.b.tokens++
			}
		}
		if room := 32 - len(br.head); room > 0 {
			take := chunk
			if len(take) > room {
				take = take[:room]
			}
			br.head = append(br.head, take...)
		}
		if i < 0 {
			return
		}
		br.endLine()
		p = p[i+1:]
	}
}

// endLine judges a finished line by its start: a document after a "..." end marker with
// no "---" is dropped by the reader; a second items: or functionConfig: at the top of a
// ResourceList or List is ignored by it.
func (br *budgetReader) endLine() {
	h := bytes.TrimRight(br.head, " \t\r\n")
	br.head = br.head[:0]
	defer func() { br.line++ }()
	if br.b.problem != nil {
		return
	}
	switch {
	case len(h) == 0 || h[0] == '#':
	case bytes.HasPrefix(h, []byte("---")):
		br.endMarker = 0
		clear(br.envelope)
	case bytes.Equal(h, []byte("...")):
		if br.endMarker == 0 {
			br.endMarker = br.line
		}
	case br.endMarker != 0:
		br.b.problem = fmt.Errorf("%s:%d: a document follows the end marker \"...\" on line %d without \"---\": YAML readers disagree "+
			"on whether it exists, and this one would drop it; start it with \"---\"", br.name, br.line, br.endMarker)
	default:
		for _, key := range []string{"items", "functionConfig"} {
			if bytes.HasPrefix(h, []byte(key+":")) {
				br.envelope[key]++
				if br.envelope[key] == 2 {
					br.b.problem = fmt.Errorf("%s:%d: %s: appears twice in one document: readers disagree on which one counts; "+
						"give it once", br.name, br.line, key)
				}
			}
		}
	}
}

func (br *budgetReader) endOfInput() {
	if len(br.head) > 0 {
		br.endLine()
	}
}
