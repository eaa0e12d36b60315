import { Context, StructuredReturn } from 'faas-js-runtime';

/**
 * Your HTTP handling function, invoked with each request. This example echoes its input: a
 * POST's body, a GET's query.
 *
 * It runs on Knative's faas-js-runtime: `skiff func run` compiles it with tsc and serves it;
 * `skiff func invoke` calls it.
 *
 * @param context the invocation context (query, headers, method, log, ...).
 * @param body the request body, parsed when it is JSON or a form.
 */
const handle = async (context: Context, body?: unknown): Promise<StructuredReturn> => {
  // YOUR CODE HERE
  context.log.info(`body: ${JSON.stringify(body)}`);

  if (context.method === 'POST') {
    return { body: body as StructuredReturn['body'] };
  } else if (context.method === 'GET') {
    return { body: context.query as StructuredReturn['body'] };
  }
  return { statusCode: 405, body: 'Method not allowed' };
};

export { handle };
