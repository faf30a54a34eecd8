// @fastify/rate-limit's two counter stores, which its types do not declare; rate-limit-store.ts
// gives them their shapes.
declare module "@fastify/rate-limit/store/LocalStore.js" {
  const LocalStore: unknown;
  export default LocalStore;
}
declare module "@fastify/rate-limit/store/RedisStore.js" {
  const RedisStore: unknown;
  export default RedisStore;
}
