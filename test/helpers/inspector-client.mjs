// A minimal debugger client (node --experimental-websocket on Node 20): attaches to the
// inspector at argv[2], asks the debuggee to pause, prints "paused" when it has stopped at a
// statement (as at a breakpoint), and resumes it when a line "resume" arrives on stdin.
import readline from 'node:readline';

const ws = new WebSocket(process.argv[2]);
let id = 0;
const send = (method, params = {}) => ws.send(JSON.stringify({ id: ++id, method, params }));
ws.addEventListener('open', () => {
  send('Debugger.enable');
  send('Debugger.pause');
  process.stdout.write('attached\n');
});
ws.addEventListener('message', (event) => {
  const msg = JSON.parse(String(event.data));
  if (msg.method === 'Debugger.paused') process.stdout.write('paused\n');
  if (msg.method === 'Debugger.resumed') process.stdout.write('resumed\n');
});
ws.addEventListener('error', () => process.exit(3));
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'resume') {
    send('Debugger.disable');
    send('Debugger.resume');
  }
  if (line === 'exit') {
    ws.close();
    process.exit(0);
  }
});
