const { test } = require('node:test');
const assert = require('node:assert');
const { handle } = require('..');

const log = { info() {}, warn() {}, error() {}, debug() {} };

test('echoes a POST body', async () => {
  const result = await handle({ method: 'POST', log }, 'hello');
  assert.deepStrictEqual(result, { body: 'hello' });
});
