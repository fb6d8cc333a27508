/**
 * Throwaway TLS certificates for tests, made with openssl at test time in a temp dir: a self-signed
 * CA, a server certificate for localhost / 127.0.0.1 and a client certificate, all signed by it.
 * Invariant: nothing here is ever committed; the caller removes the dir.
 */
import { execFileSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"

export interface TestCertificates {
  readonly dir: string
  readonly caFile: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
}

const openssl = (args: ReadonlyArray<string>) => execFileSync("/usr/bin/openssl", args, { stdio: "pipe" })

/** Writes ca.pem, server.pem/server-key.pem and client.pem/client-key.pem into `dir` (2048-bit RSA, 1 day). */
export const makeTestCertificates = (dir: string): TestCertificates => {
  const f = (name: string) => join(dir, name)
  openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=exactor test CA"].concat([
      "-keyout",
      f("ca-key.pem"),
      "-out",
      f("ca.pem")
    ])
  )
  writeFileSync(
    f("server.ext"),
    "subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n"
  )
  writeFileSync(f("client.ext"), "extendedKeyUsage = clientAuth\n")
  for (const [name, cn] of [
    ["server", "localhost"],
    ["client", "exactor"]
  ] as const) {
    openssl(
      ["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-keyout", f(`${name}-key.pem`)].concat([
        "-out",
        f(`${name}.csr`)
      ])
    )
    openssl(
      ["x509", "-req", "-in", f(`${name}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca-key.pem")].concat([
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        f(`${name}.ext`),
        "-out",
        f(`${name}.pem`)
      ])
    )
  }
  return {
    dir,
    caFile: f("ca.pem"),
    serverCert: f("server.pem"),
    serverKey: f("server-key.pem"),
    clientCert: f("client.pem"),
    clientKey: f("client-key.pem")
  }
}
