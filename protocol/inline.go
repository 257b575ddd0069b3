package protocol

// splitInline splits an inline command line (its "\r\n" or "\n" already
// cut off) into arguments exactly as Redis's sdssplitargs does, so that a
// line typed into telnet or nc means here what it means to redis-server:
//
//   - Arguments are separated by runs of whitespace. Before an argument
//     that is any of C's isspace set (space, \t, \n, \v, \f, \r); inside
//     an unquoted argument only space, \t, \n and \r end it, so a \v or \f
//     there is part of the argument, as in Redis.
//   - "double quotes" take the escapes \xHH (two hex digits, either case),
//     \n \r \t \b \a, and a backslash before any other byte stands for
//     that byte (\" \\ \x without two hex digits). 'single quotes' take
//     only \' ; every other byte, backslashes included, is itself.
//   - A quote may open in the middle of an argument (a"b c" is "ab c"),
//     but a closing quote must be followed by whitespace or the end of the
//     line; that, and a quote never closed, is "unbalanced quotes".
//   - A pair of quotes with nothing between, double or single, is an
//     empty argument.
//   - A NUL byte ends the line, as it ends sdssplitargs's C string (the
//     guard refuses a raw NUL in an inline command before it gets here).
//
// The arguments are decoded in place: each is a slice of line, which is
// overwritten (an escape is never shorter than what it stands for). They
// are appended to args, which is returned.
func splitInline(line []byte, args [][]byte) ([][]byte, error) {
	for i, b := range line {
		if b == 0 {
			line = line[:i]
			break
		}
	}
	at := func(i int) byte { // line as a C string: 0 past its end
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			return args, nil
		}
		start, w := p, p // the argument is written at line[start:w]
		inDouble, inSingle := false, false
		for done := false; !done; {
			c := at(p)
			switch {
			case inDouble:
				switch {
				case c == '\\' && at(p+1) == 'x' && isHex(at(p+2)) && isHex(at(p+3)):
					line[w] = unhex(line[p+2])<<4 | unhex(line[p+3])
					w++
					p += 3
				case c == '\\' && at(p+1) != 0:
					p++
					line[w] = unescape(line[p])
					w++
				case c == '"':
					if p+1 < len(line) && !isSpace(line[p+1]) {
						return args, errUnbalancedQuotes
					}
					done = true
				case c == 0:
					return args, errUnbalancedQuotes
				default:
					line[w] = c
					w++
				}
			case inSingle:
				switch {
				case c == '\\' && at(p+1) == '\'':
					p++
					line[w] = '\''
					w++
				case c == '\'':
					if p+1 < len(line) && !isSpace(line[p+1]) {
						return args, errUnbalancedQuotes
					}
					done = true
				case c == 0:
					return args, errUnbalancedQuotes
				default:
					line[w] = c
					w++
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					line[w] = c
					w++
				}
			}
			if p < len(line) {
				p++
			}
		}
		args = append(args, line[start:w:w])
	}
}

// isSpace is C's isspace in the C locale.
func isSpace(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r')
}

func isHex(b byte) bool {
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

func unhex(b byte) byte {
	switch {
	case b >= 'a':
		return b - 'a' + 10
	case b >= 'A':
		return b - 'A' + 10
	}
	return b - '0'
}

// unescape is the byte a backslash escape inside double quotes stands for.
func unescape(b byte) byte {
	switch b {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return b
}
