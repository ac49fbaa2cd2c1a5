// A real OpenID Connect server for offboard's discovery and introspection test
// (tests/it/oidc.rs): oidc-provider with the revocation, introspection and client
// credentials features, and one confidential client. Listens on 127.0.0.1 on a free port
// (or OIDC_PORT), and prints `listening PORT` once it serves. Development settings (an
// http issuer on loopback, the library's development signing keys): never for production.
//
// Besides the standard endpoints, `POST /_test/mint` (loopback only, like the whole
// server) saves an access token and a refresh token of one grant for an account, as the
// authorization code flow would issue them without its browser round trip, and answers
// `{"access_token", "refresh_token"}`.
import http from 'node:http';
import Provider from 'oidc-provider';

const CLIENT_ID = process.env.OIDC_CLIENT_ID || 'offboard';
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET || 'offboard-test-secret';

const server = http.createServer();
server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['https://offboard.invalid/callback'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      devInteractions: { enabled: false },
    },
    scopes: ['openid', 'offline_access', 'api'],
    issueRefreshToken: () => true,
  });

  const mint = async (res) => {
    const client = await provider.Client.find(CLIENT_ID);
    const accountId = 'alice';
    const grant = new provider.Grant({ accountId, clientId: CLIENT_ID });
    grant.addOIDCScope('openid offline_access');
    const grantId = await grant.save();
    const common = { accountId, client, grantId, gty: 'authorization_code', scope: 'openid offline_access' };
    const access = await new provider.AccessToken(common).save();
    const refresh = await new provider.RefreshToken(common).save();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: access, refresh_token: refresh }));
  };

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.method === 'POST' && req.url === '/_test/mint') {
      mint(res).catch((err) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`listening ${port}\n`);
});
