import { Context, StructuredReturn } from './types';

/**
 * Your HTTP handling function, invoked with each request. This example echoes its input: a
 * POST's body, a GET's query.
 *
 * It can be run with `skiff func run` (which compiles it with tsc) and invoked with
 * `skiff func invoke`.
 */
const handle = async (context: Context, body?: unknown): Promise<StructuredReturn> => {
  // YOUR CODE HERE
  context.log.info('query', context.query);
  context.log.info('body', body);

  if (context.method === 'POST') {
    return { body };
  } else if (context.method === 'GET') {
    return { body: context.query };
  }
  return { statusCode: 405, statusMessage: 'Method not allowed' };
};

export { handle };
