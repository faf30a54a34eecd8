/**
 * Reading `.env` files exactly as the `dotenv` package does: its own parser, so quoting,
 * multi-line values, `#` comments and `export` prefixes mean the same here as in the app.
 */
import { parse } from "dotenv";

/** Parses `.env` text into variables, in file order (a later duplicate wins, as in dotenv). */
export function parseDotenv(text: string | Uint8Array): Map<string, string> {
  const parsed = parse(Buffer.from(text)) as Record<string, string>;
  return new Map(Object.entries(parsed));
}
