// Types of time.js for the unit tests (the console itself is plain JavaScript).
export function parseWhen(text: string, now?: Date): { date?: Date; error?: string };
