// The certificates of the HTTPS demo (`npm run demo -- --tls`, scripts/demo.ts): a throwaway CA and a server
// certificate for MinIO, made once and reused by later runs, under DIR (the demo's .local/tls):
//   DIR/ca.pem            the CA certificate (what nix-cache:caCertificate and `curl --cacert` take)
//   DIR/ca.key            the CA's private key, mode 0600 (DIR itself is 0700)
//   DIR/minio-certs/      MinIO's --certs-dir: public.crt, private.key (for localhost and 127.0.0.1), CAs/ca.crt
// The CA is reused when ca.pem and ca.key exist; the server certificate is reissued when it is missing, expires
// within 30 days, does not name localhost and 127.0.0.1, or was not issued by the current CA.
// Says one line per action on stderr.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { SetupError } from "../lib/cli/command";
import { writeFileAtomic } from "../lib/cli/writeFile";
import { loadCa, type LocalCa, makeCa, makeServerCert, type Pem, writeMinioCerts } from "../harness/localCa";
import { TLS_NAMES } from "../harness/minio";

const DNS_NAMES = TLS_NAMES.dnsNames;
const IP_ADDRESSES = TLS_NAMES.ipAddresses;
const DAY_MS = 24 * 60 * 60 * 1000;
// Certificates closer to their end than this are replaced.
const RENEW_BEFORE_MS = 30 * DAY_MS;

const say = (line: string) => process.stderr.write(`demo: ${line}\n`);

// A path as the user typed it relative to the current directory (".local/tls/ca.key"), absolute when outside it.
function shown(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel === "" || rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
}

// The file's text, or undefined when it does not exist.
function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}


const until = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

async function ensureCa(dir: string): Promise<LocalCa> {
  const certFile = path.join(dir, "ca.pem");
  const keyFile = path.join(dir, "ca.key");
  const certPem = readIfExists(certFile);
  const keyPem = readIfExists(keyFile);
  if (certPem !== undefined && keyPem === undefined) {
    // Its certificate may already be trusted somewhere (a stack's config, a browser): never replace it silently.
    throw new SetupError(
      `${shown(certFile)} exists but its key ${shown(keyFile)} does not, so this CA can sign nothing more; ` +
        `remove ${shown(certFile)} to make a new CA (then run the demo again: it sets the new CA in the stack)`,
    );
  }
  if (certPem !== undefined && keyPem !== undefined) {
    let ca: LocalCa;
    try {
      ca = await loadCa(certPem, keyPem);
    } catch (err) {
      throw new SetupError(`cannot reuse the CA in ${shown(certFile)} and ${shown(keyFile)}: ${(err as Error).message}; remove both files to make a new CA`);
    }
    // An existing key file keeps its owner's mode choices only as long as they are private.
    if ((fs.statSync(keyFile).mode & 0o077) !== 0) {
      fs.chmodSync(keyFile, 0o600);
      say(`tightened ${shown(keyFile)} to mode 0600`);
    }
    const notAfter = new Date(new crypto.X509Certificate(ca.certPem).validTo);
    if (notAfter.getTime() - Date.now() > RENEW_BEFORE_MS) {
      say(`reused the CA in ${shown(certFile)} (valid until ${until(notAfter)})`);
      return ca;
    }
    say(`the CA in ${shown(certFile)} expires ${until(notAfter)}, within 30 days: replacing it`);
  }
  // A key without its certificate is what an interrupted first run leaves: nothing can trust it yet.
  const ca = await makeCa();
  // Key first: a ca.pem is never there without the key that goes with it.
  writeFileAtomic(keyFile, ca.keyPem, 0o600);
  writeFileAtomic(certFile, ca.certPem, 0o644);
  say(`made a new CA in ${shown(certFile)} (key in ${shown(keyFile)}, mode 0600)`);
  return ca;
}

// Why the server certificate in certsDir must be (re)issued, or undefined when it is good to keep.
function reissueReason(certsDir: string, ca: LocalCa): string | undefined {
  const certPem = readIfExists(path.join(certsDir, "public.crt"));
  const keyPem = readIfExists(path.join(certsDir, "private.key"));
  if (certPem === undefined || keyPem === undefined) return "none there yet";
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(certPem);
    if (!cert.checkPrivateKey(crypto.createPrivateKey(keyPem))) return "the previous one's key did not belong to it";
  } catch {
    return "the previous one could not be read";
  }
  const caCert = new crypto.X509Certificate(ca.certPem);
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return "the previous one was issued by another CA";
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() - Date.now() <= RENEW_BEFORE_MS) return `the previous one expires ${until(notAfter)}, within 30 days`;
  if (new Date(cert.validFrom).getTime() > Date.now()) return "the previous one is not valid yet";
  if (DNS_NAMES.some((name) => cert.checkHost(name) !== name) || IP_ADDRESSES.some((ip) => cert.checkIP(ip) !== ip)) {
    return `the previous one does not name ${[...DNS_NAMES, ...IP_ADDRESSES].join(", ")}`;
  }
  return undefined;
}

async function ensureServerCert(dir: string, ca: LocalCa): Promise<void> {
  const certsDir = path.join(dir, "minio-certs");
  const reason = reissueReason(certsDir, ca);
  if (reason === undefined) {
    const notAfter = new Date(new crypto.X509Certificate(fs.readFileSync(path.join(certsDir, "public.crt"))).validTo);
    // MinIO's copy of the CA (CAs/ca.crt) follows ca.pem, e.g. after ca.pem was restored from elsewhere.
    const caCopy = readIfExists(path.join(certsDir, "CAs", "ca.crt"));
    if (caCopy !== ca.certPem) {
      const server: Pem = {
        certPem: fs.readFileSync(path.join(certsDir, "public.crt"), "utf8"),
        keyPem: fs.readFileSync(path.join(certsDir, "private.key"), "utf8"),
      };
      writeMinioCerts(certsDir, server, ca);
    }
    say(`reused the server certificate in ${shown(certsDir)} (valid until ${until(notAfter)})`);
    return;
  }
  const server = await makeServerCert(ca, { dnsNames: DNS_NAMES, ipAddresses: IP_ADDRESSES });
  writeMinioCerts(certsDir, server, ca);
  const notAfter = new Date(new crypto.X509Certificate(server.certPem).validTo);
  say(
    `issued a server certificate for ${[...DNS_NAMES, ...IP_ADDRESSES].join(", ")} valid until ${until(notAfter)} ` +
      `in ${shown(certsDir)} (${reason})`,
  );
}

/** Makes or reuses the CA and MinIO's certificate under `dir`; a SetupError says what to do when it cannot. */
export async function ensureDemoCerts(dir: string): Promise<{ ca: LocalCa; certsDir: string }> {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700); // the mode of mkdirSync is filtered by the umask, and an existing dir keeps its own
    const ca = await ensureCa(dir);
    await ensureServerCert(dir, ca);
    return { ca, certsDir: path.join(dir, "minio-certs") };
  } catch (err) {
    // SetupErrors say what to do; anything else (a permission, a full disk) is shown as node reports it.
    if (err instanceof SetupError) throw err;
    throw new SetupError(`could not make the certificates in ${shown(dir)}: ${(err as Error).message}`);
  }
}
