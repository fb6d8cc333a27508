/**
 * A broker URL as it may be shown in a log line, status output or error message: the password (and
 * a token given as the user part) is replaced by `***`. Invariant: no text this returns holds the
 * URL's password, whether or not the URL parses.
 */
export const redactUrl = (url: string): string => {
  if (URL.canParse(url)) {
    const u = new URL(url)
    if (u.password === "" && u.username === "") return url
    // `nats://<token>@host`: a lone user part of a NATS URL is a token
    const tokenOnly = u.password === "" && /^(nats|tls):$/.test(u.protocol)
    const user = tokenOnly ? "***" : u.username
    const pass = u.password === "" ? "" : ":***"
    return url.replace(/\/\/[^@/]*@/, `//${user}${pass}@`)
  }
  // not a URL: hide whatever sits between `//` and `@` (or the whole text if it has neither)
  return /\/\/[^@/]*@/.test(url) ? url.replace(/\/\/[^@/]*@/, "//***@") : url
}
