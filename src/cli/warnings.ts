/**
 * node:sqlite is marked experimental in Node 24 and says so on every start; that line is
 * noise to a CLI user. This drops that one warning and lets every other warning through.
 * Call it before node:sqlite is imported.
 */
export function quietSqliteWarning(): void {
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    if (/SQLite is an experimental feature/.test(text)) return;
    (emit as (...a: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}
