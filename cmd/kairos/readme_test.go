package main

import (
	"os"
	"strings"
	"testing"
)

// shellWords splits one shell command into words: single and double quotes
// group, a backslash escapes the next character, anything else splits on
// blanks. Good enough for the README's commands, which have no nesting
// beyond $(…) (kept as one word when quoted).
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in := false
	var quote rune
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// readmeCommands returns every `bin/kairos …` command of the README's sh
// blocks (continuation lines joined, comments dropped, split at ; && | &),
// without the program name.
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	inBlock := false
	var line string
	for l := range strings.Lines(string(data)) {
		l = strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(l, "```sh"):
			inBlock = true
			continue
		case strings.HasPrefix(l, "```"):
			inBlock = false
			continue
		case !inBlock:
			continue
		}
		if strings.HasSuffix(l, "\\") {
			line += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		line += l
		full := line
		line = ""
		if i := strings.Index(full, " #"); i >= 0 {
			full = full[:i]
		}
		for _, sep := range []string{"&&", ";", "|", "&", "$(", ")"} {
			full = strings.ReplaceAll(full, sep, "\n")
		}
		for seg := range strings.Lines(full) {
			w := shellWords(strings.TrimSpace(seg))
			for i, x := range w {
				if x == "bin/kairos" {
					args := w[i+1:]
					// redirections end the command
					for j, a := range args {
						if strings.HasPrefix(a, ">") || strings.HasPrefix(a, "2>") || strings.HasPrefix(a, "<") {
							args = args[:j]
							break
						}
					}
					out = append(out, args)
					break
				}
			}
		}
	}
	return out
}

// TestReadmeCommandsExist: every kairos command the README shows, with its
// flags, exists in the CLI and parses (values are not run).
func TestReadmeCommandsExist(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 40 {
		t.Fatalf("found %d kairos commands in README.md; the extraction is broken", len(cmds))
	}
	for _, args := range cmds {
		checkInvocation(t, "README.md", args)
	}
}

func TestShellWords(t *testing.T) {
	got := strings.Join(shellWords(`aggregator enrol --id 'a b' --x "c d" e\ f`), "|")
	if want := "aggregator|enrol|--id|a b|--x|c d|e f"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
