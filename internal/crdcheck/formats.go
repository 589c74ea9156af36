package crdcheck

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// validFormat checks a string against the formats the CRDs in use declare,
// with the semantics of k8s.io/kube-openapi's strfmt registry that the API
// server validates them with. known is false for formats this package does
// not implement; the server supports more (uuid, email, ...) but none of the
// loaded CRDs uses them.
func validFormat(format, s string) (ok, known bool) {
	switch format {
	case "date-time", "datetime":
		return isDateTime(s), true
	case "byte":
		return base64RE.MatchString(s), true
	case "cidr":
		return isCIDR(s), true
	case "duration":
		return isDuration(s), true
	}
	return true, false
}

var (
	// The server's byte check is a regular expression, not a decoder: it
	// rejects the empty string and newlines, which a decoder would accept.
	base64RE   = regexp.MustCompile(`^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$`)
	timeRE     = regexp.MustCompile(`^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$`)
	durationRE = regexp.MustCompile(`((\d+)\s*([A-Za-zµ]+))`)
)

func isDateTime(s string) bool {
	if len(s) < 4 {
		return false
	}
	parts := strings.Split(strings.ToLower(s), "t")
	if len(parts) < 2 {
		return false
	}
	if _, err := time.Parse("2006-01-02", parts[0]); err != nil {
		return false
	}
	m := timeRE.FindStringSubmatch(parts[1])
	return m != nil && m[1] <= "23" && m[2] <= "59" && m[3] <= "59"
}

// isCIDR accepts leading zeros in IPv4 octets, as the server's sloppy
// parser does.
func isCIDR(s string) bool {
	if _, _, err := net.ParseCIDR(s); err == nil {
		return true
	}
	addr, bits, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(addr, ":") {
		return false
	}
	octets := strings.Split(addr, ".")
	for i, o := range octets {
		n, err := strconv.ParseUint(o, 10, 8)
		if err != nil {
			return false
		}
		octets[i] = strconv.FormatUint(n, 10)
	}
	_, _, err := net.ParseCIDR(strings.Join(octets, ".") + "/" + bits)
	return err == nil
}

var durationUnits = [][]string{
	{"ns", "nano"},
	{"us", "µs", "micro"},
	{"ms", "milli"},
	{"s", "sec"},
	{"m", "min"},
	{"h", "hr", "hour"},
	{"d", "day"},
	{"w", "wk", "week"},
}

// isDuration accepts Go durations and the Scala-like "3 days" form that the
// server's strfmt duration accepts.
func isDuration(s string) bool {
	if _, err := time.ParseDuration(s); err == nil {
		return true
	}
	for _, m := range durationRE.FindAllStringSubmatch(s, -1) {
		unit := strings.ToLower(strings.TrimSpace(m[3]))
		for _, variants := range durationUnits {
			last := len(variants) - 1
			for i, v := range variants {
				if (i == last && strings.HasPrefix(unit, v)) || strings.EqualFold(v, unit) {
					return true
				}
			}
		}
	}
	return false
}
