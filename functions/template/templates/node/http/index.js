/**
 * Your HTTP handling function, invoked with each request. This example echoes its input: a
 * POST's body, a GET's query.
 *
 * It can be run with `skiff func run`, invoked with `skiff func invoke`, tested with `npm test`.
 *
 * @param {Context} context a context object from Knative's faas-js-runtime.
 * @param {object} context.body the request body if any
 * @param {object} context.query the query string deserialized as an object, if any
 * @param {object} context.log logging object with methods for 'info', 'warn', 'error', etc.
 * @param {object} context.headers the HTTP request headers
 * @param {string} context.method the HTTP request method
 * @param {string} context.httpVersion the HTTP protocol version
 * @param {object|string} body the request body, parsed when it is JSON or a form
 */
const handle = async (context, body) => {
  // YOUR CODE HERE
  context.log.info('query', context.query);
  context.log.info('body', body);

  if (context.method === 'POST') {
    return { body };
  } else if (context.method === 'GET') {
    return { query: context.query };
  } else {
    return { statusCode: 405, statusMessage: 'Method not allowed' };
  }
};

module.exports = { handle };
