// Writing a file whole and with exactly the mode asked for: host files, secret files, demo keys and MinIO's
// certificates all go through here.

import * as fs from "fs";
import * as path from "path";

/**
 * Writes `content` to `file` through a temporary file in the same directory and a rename: an interrupted run
 * never leaves a half-written file, and the file has `mode` from the moment it exists (a key is never readable
 * by others, not even briefly), also when it replaces one with a wider mode.
 */
export function writeFileAtomic(file: string, content: string, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.rmSync(tmp, { force: true });
  fs.writeFileSync(tmp, content, { mode, flag: "wx" });
  fs.chmodSync(tmp, mode); // writeFileSync's mode is filtered by the umask
  fs.renameSync(tmp, file);
}
