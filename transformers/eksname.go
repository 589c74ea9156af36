package transformers

import (
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// maxEKSClusterNameLength is CAPA's maxClusterNameLength, which is also EKS's
// own limit on cluster names.
const maxEKSClusterNameLength = 100

// eksNameHashPrefix and eksNameHashedLength mirror CAPA's resourcePrefix and its
// hard-coded total of 32 characters for a hashed name.
const (
	eksNameHashPrefix   = "capa_"
	eksNameHashedLength = 32
)

const base36Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// generateEKSName mirrors CAPA's eks.GenerateEKSName exactly, so the name we
// predict is the one CAPA's webhook will store. Note that the comparison is
// strict and counts bytes: a name of exactly maxLength bytes is hashed too.
func generateEKSName(resourceName, namespace string, maxLength int) string {
	eksName := namespace + "_" + strings.ReplaceAll(resourceName, ".", "_")
	if len(eksName) < maxLength {
		return eksName
	}
	return eksNameHashPrefix + base36TruncatedHash(eksName, eksNameHashedLength-len(eksNameHashPrefix))
}

// base36TruncatedHash mirrors CAPA's hash.Base36TruncatedHash. It is not an
// encoding: each digest byte becomes one character (byte % 36), so the result
// has exactly length characters. CAPA returns an error for a length outside
// 1..64; here that can only be a programming error, so it panics.
func base36TruncatedHash(s string, length int) string {
	h, err := blake2b.New(length, nil)
	if err != nil {
		panic(fmt.Sprintf("base36TruncatedHash: digest length %d: %v", length, err))
	}
	h.Write([]byte(s)) // hash.Hash.Write never fails
	sum := h.Sum(nil)
	out := make([]byte, len(sum))
	for i, b := range sum {
		out[i] = base36Alphabet[int(b)%len(base36Alphabet)]
	}
	return string(out)
}

// deriveEKSClusterName returns the name CAPA's AWSManagedControlPlane webhook
// defaults spec.eksClusterName to. A clusterctl placeholder in either input
// means the real length is only known after substitution, so the hash cannot
// be decided yet: the unhashed form is returned with templated set, and dots
// inside placeholders are kept because they belong to variable defaults, not
// to the name CAPA will see.
func deriveEKSClusterName(controlPlaneName, namespace string) (name string, templated bool) {
	if !hasPlaceholder(controlPlaneName) && !hasPlaceholder(namespace) {
		return generateEKSName(controlPlaneName, namespace, maxEKSClusterNameLength), false
	}
	// An unterminated placeholder is left as is; validateEKSClusterName reports it.
	segs, _ := splitPlaceholders(controlPlaneName)
	var b strings.Builder
	b.WriteString(namespace)
	b.WriteByte('_')
	for _, seg := range segs {
		if seg.placeholder {
			b.WriteString(seg.text)
		} else {
			b.WriteString(strings.ReplaceAll(seg.text, ".", "_"))
		}
	}
	return b.String(), true
}

// validateEKSClusterName enforces EKS's rule ^[0-9A-Za-z][A-Za-z0-9_-]*$ with
// at most 100 characters. It is deliberately strict because the name is
// written into a shell script. For a templated name only the literal text
// around the placeholders can be checked, and the length is unknown until
// clusterctl substitutes the variables.
func validateEKSClusterName(name string) error {
	if name == "" {
		return fmt.Errorf("EKS cluster name must not be empty")
	}
	if !hasPlaceholder(name) {
		if err := checkEKSNameChars(name, name, true); err != nil {
			return err
		}
		if len(name) > maxEKSClusterNameLength {
			return fmt.Errorf("EKS cluster name %q is %d characters long, EKS allows at most %d", name, len(name), maxEKSClusterNameLength)
		}
		return nil
	}
	segs, err := splitPlaceholders(name)
	if err != nil {
		return fmt.Errorf("EKS cluster name %q: %w", name, err)
	}
	for i, seg := range segs {
		if seg.placeholder {
			// The text inside a placeholder reaches the script too (as a default, or
			// as the variable's name): only a plain variable with a safe default may stand there.
			if !safePlaceholder.MatchString(seg.text) {
				return fmt.Errorf("EKS cluster name %q: placeholder %q is not allowed in a name written into a shell script; "+
					"use ${NAME} or ${NAME:=default} with a default of letters, digits, '_', '-' and '.'", name, seg.text)
			}
			continue
		}
		if err := checkEKSNameChars(name, seg.text, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// checkEKSNameChars checks part of name; first says whether part starts the
// name and must therefore begin with a letter or digit.
func checkEKSNameChars(name, part string, first bool) error {
	for i, r := range part {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r == '_' || r == '-') && !(first && i == 0):
		case first && i == 0:
			return fmt.Errorf("EKS cluster name %q must start with a letter or digit, not %q", name, r)
		default:
			return fmt.Errorf("EKS cluster name %q contains %q; only letters, digits, '_' and '-' are allowed", name, r)
		}
	}
	return nil
}

// safePlaceholder is a clusterctl variable, optionally with a default, that cannot smuggle
// shell syntax into the bootstrap script.
var safePlaceholder = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-=][A-Za-z0-9_.-]*)?\}$`)

// hasPlaceholder reports whether s contains a clusterctl variable reference.
func hasPlaceholder(s string) bool {
	return strings.Contains(s, "${")
}

type nameSegment struct {
	text        string
	placeholder bool
}

// splitPlaceholders splits s into literal text and "${...}" placeholders. The
// closing brace is matched with nesting so that a default such as
// "${A:=${B}}" is one placeholder. On an unterminated placeholder the rest of
// s is returned as a placeholder segment together with an error.
func splitPlaceholders(s string) ([]nameSegment, error) {
	var segs []nameSegment
	for s != "" {
		start := strings.Index(s, "${")
		if start < 0 {
			segs = append(segs, nameSegment{text: s})
			break
		}
		if start > 0 {
			segs = append(segs, nameSegment{text: s[:start]})
		}
		end, depth := -1, 0
		for i := start; i < len(s) && end < 0; i++ {
			switch {
			case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
				depth++
				i++
			case s[i] == '}':
				depth--
				if depth == 0 {
					end = i + 1
				}
			}
		}
		if end < 0 {
			segs = append(segs, nameSegment{text: s[start:], placeholder: true})
			return segs, fmt.Errorf("unterminated placeholder %q", s[start:])
		}
		segs = append(segs, nameSegment{text: s[start:end], placeholder: true})
		s = s[end:]
	}
	return segs, nil
}
