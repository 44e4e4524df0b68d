// The Plinto stand-in: a real OpenID Provider (npm oidc-provider 9, OpenID-certified) for local
// development and tests. Started by scripts/run.sh and by the identity tests; never for production.
// Differences from the shared reference configuration, each to mirror a Plinto convention:
// - access tokens carry `type: "access"` (Plinto refuses other types as bearers) and the user's name;
// - ID tokens carry the profile claims (conformIdTokenClaims: false), as Plinto's do.
// Environment: OP_PORT, OP_ISSUER, OP_API_AUDIENCE, RP_ORIGIN, OP_JWKS (see signingKeys).
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const PORT = Number(process.env.OP_PORT ?? 4444);
const ISSUER = process.env.OP_ISSUER ?? `http://${HOST}:${PORT}`;
const API_AUDIENCE = process.env.OP_API_AUDIENCE ?? 'urn:switchyard:api'; // an absolute URI (resource indicator)
const RP = process.env.RP_ORIGIN ?? 'http://127.0.0.1:3000';

// RS256 signing key, generated at boot (kid is stable per process).
// Set OP_JWKS to a JSON {"keys":[...private JWKs...]} to pin keys / test rotation.
async function signingKeys() {
  if (process.env.OP_JWKS) return JSON.parse(process.env.OP_JWKS);
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { keys: [{ ...jwk, kid: `dev-rs256-${Date.now()}`, alg: 'RS256', use: 'sig' }] };
}

// Fake directory: any login is accepted by devInteractions; accountId = typed login.
// A login `unverified:ADDRESS` claims ADDRESS without having verified it (email_verified: false),
// as a Plinto account does before its confirmation mail is answered: anyone can claim any address.
const UNVERIFIED = 'unverified:';
function claimsFor(accountId) {
  const admin = accountId.startsWith('admin');
  const unverified = accountId.startsWith(UNVERIFIED);
  const address = unverified ? accountId.slice(UNVERIFIED.length) : accountId;
  return {
    sub: accountId,
    email: address.includes('@') ? address : `${address}@example.test`,
    email_verified: !unverified,
    name: `Test ${accountId}`,
    preferred_username: accountId,
    tid: 'tenant-dev',             // mirrors Plinto's "tid" claim
    org: 'org-dev',                // mirrors Plinto's optional "org" claim
    roles: admin ? ['admin'] : ['member'],
  };
}

const configuration = {
  clients: [
    {
      client_id: 'switchyard',
      client_secret: 'switchyard-dev-secret',
      redirect_uris: [`${RP}/auth/callback`],
      post_logout_redirect_uris: [`${RP}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    {
      // machine-to-machine client (e.g. CLI / CI calling the API)
      client_id: 'switchyard-m2m',
      client_secret: 'switchyard-m2m-secret',
      redirect_uris: [],
      response_types: [],
      grant_types: ['client_credentials'],
    },
  ],
  jwks: await signingKeys(),
  cookies: { keys: ['dev-only-cookie-key-change-me'] },
  pkce: { required: () => true },               // S256 only (default in v9)
  scopes: ['openid', 'offline_access', 'profile', 'email', 'org'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    org: ['tid', 'org', 'roles'],
  },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => claimsFor(sub),
  }),
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },          // built-in login + consent pages (dev only!)
    rpInitiatedLogout: { enabled: true },        // end_session_endpoint
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    // Issue RS256 JWT access tokens (aud = API) like Plinto does, instead of opaque ones.
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API_AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: API_AUDIENCE,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 15 * 60,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // Put Plinto-like custom claims into JWT access tokens.
  extraTokenClaims: async (_ctx, token) => {
    if (!token.accountId) return undefined;
    const c = claimsFor(token.accountId);
    return { type: 'access', email: c.email, name: c.name, tid: c.tid, org: c.org, roles: c.roles };
  },
  // Issue refresh tokens to the web client even without offline_access.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: 15 * 60,
    AuthorizationCode: 60,
    IdToken: 60 * 60,
    RefreshToken: 7 * 24 * 60 * 60,
    ClientCredentials: 10 * 60,
    Interaction: 60 * 60,
    Session: 24 * 60 * 60,
    Grant: 7 * 24 * 60 * 60,
  },
  // Skip the consent screen for our first-party client (login form only).
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (ctx.oidc.client.clientId !== 'switchyard') return undefined;
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile org offline_access');
    grant.addResourceScope(API_AUDIENCE, 'api');
    await grant.save();
    return grant;
  },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
const server = provider.listen(PORT, HOST, () => {
  console.log(`mock OP listening: ${ISSUER}/.well-known/openid-configuration`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
