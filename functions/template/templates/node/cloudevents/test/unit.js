const { test } = require('node:test');
const assert = require('node:assert');
const { CloudEvent } = require('cloudevents');
const { handle } = require('..');

const log = { info() {}, warn() {}, error() {}, debug() {} };

test('answers with a function.response event', async () => {
  const event = new CloudEvent({ source: 'test', type: 'test.type', data: { message: 'hi' } });
  const result = await handle({ log }, event);
  assert.strictEqual(result.type, 'function.response');
  assert.deepStrictEqual(result.data, { message: 'hi' });
});
