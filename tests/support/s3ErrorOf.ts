// The failure of an S3Rest call, for the s3rest tests (unit and integration).
import { S3Error } from "../../lib/s3/client";

/** The failure of `p`, which must fail with an S3Error. */
export async function s3ErrorOf(p: Promise<unknown>): Promise<S3Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof S3Error)) throw new Error(`expected an S3Error, got ${String(err)}`);
  return err;
}
