package fstab

import "strings"

// escape writes s as one fstab field: every byte that would end the field
// or the line (space, tab, newline and every other byte below 0x21), the
// backslash that starts an escape, '#' that would start a comment, and
// DEL, as a three-digit octal escape (\040 for a space). unescape reads it
// back.
func escape(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if c < 0x21 || c == '\\' || c == '#' || c == 0x7F {
			b.WriteByte('\\')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + c>>3&7)
			b.WriteByte('0' + c&7)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unescape decodes the octal escapes of an fstab field as libmount does: a
// backslash and three octal digits are one byte; any other backslash is
// itself. A decoded NUL ends the field, as it does for fstab's C readers.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+3 < len(s) && octal(s[i+1]) && octal(s[i+2]) && octal(s[i+3]) {
			c = (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			i += 3
		}
		if c == 0 {
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}

func octal(c byte) bool { return c >= '0' && c <= '7' }
