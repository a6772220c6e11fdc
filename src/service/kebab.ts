/**
 * kebab-case as the reference computes it for method identity:
 * `TemplateHost` → `template-host`, `echo_point` and `echoPoint` → `echo-point`,
 * `HTTPServer` → `http-server`.
 */
export function kebab(name: string): string {
  const words: string[] = [];
  for (const part of name.split(/[^\p{L}\p{N}]+/u)) {
    if (part.length === 0) continue;
    const chars = [...part];
    let word = "";
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      const prev = i > 0 ? chars[i - 1]! : "";
      const next = i + 1 < chars.length ? chars[i + 1]! : "";
      if (word.length > 0 && isUpper(c)) {
        const lowerToUpper = isLower(prev) || isDigit(prev);
        const acronymEnd = isUpper(prev) && isLower(next);
        if (lowerToUpper || acronymEnd) {
          words.push(word);
          word = "";
        }
      }
      word += c;
    }
    if (word.length > 0) words.push(word);
  }
  return words.map((w) => w.toLowerCase()).join("-");
}

function isUpper(c: string): boolean {
  return c !== c.toLowerCase() && c === c.toUpperCase();
}
function isLower(c: string): boolean {
  return c !== c.toUpperCase() && c === c.toLowerCase();
}
function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}
