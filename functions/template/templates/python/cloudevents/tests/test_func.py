"""Run with: PYTHONPATH=.func/runner python3 -m unittest discover -s tests, or with the
cloudevents package installed."""
import asyncio
import unittest

from function import new
from function.func import CloudEvent


class TestFunc(unittest.TestCase):
    def test_response(self):
        sent = []

        async def send(event):
            sent.append(event)

        event = CloudEvent(attributes={'type': 'test', 'source': 'test', 'id': '1'}, data={'message': 'hi'})
        asyncio.run(new().handle({'type': 'http', 'event': event}, None, send))
        self.assertEqual(sent[0].get_type(), 'function.response')
        self.assertEqual(sent[0].get_data(), {'message': 'hi'})


if __name__ == '__main__':
    unittest.main()
