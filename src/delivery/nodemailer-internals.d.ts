// nodemailer's DATA escaping stream (dist/esm/smtp-connection/data-stream.js); @types/nodemailer does not describe it.
declare module 'nodemailer/lib/smtp-connection/data-stream' {
  import type { Transform } from 'node:stream';
  const DataStream: new (options?: object) => Transform;
  export default DataStream;
}
