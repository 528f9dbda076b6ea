/**
 * The file every HTTP app shares (`portico_http.conf`): its name, and what it holds as Portico
 * renders it and reads it back. Pure; `render/http-shared.ts` writes it, `parse/http-shared.ts` reads
 * it, and whatever the apps and the settings call for is decided in `apply/`.
 */

export const SHARED_HTTP_FILE = 'portico_http.conf';

/** The names of the sticky cookie and of the two variables the shared maps make of it. */
export interface StickyNames {
  cookie: string;
  key: string;
  setCookie: string;
}

/** What the shared file says, directive for directive (its comments aside). */
export interface SharedHttp {
  httpPort: number;
  httpsPort: number;
  /** The catch-all server is the default on the plain HTTP port: no app has `"default": true`. */
  httpDefault: boolean;
  cacheDir: string;
  cacheKeysMb: number;
  cacheMaxMb: number;
  sticky: StickyNames;
  /** The variable the credentials map sets for a request with Authorization or a cookie (cached routes skip those). */
  cacheCredentials: string;
  /** `server_names_hash_bucket_size` and `_max_size`, when the file sets them. */
  serverNamesHash: { bucketSize: number; maxSize: number } | undefined;
}
