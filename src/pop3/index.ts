/** POP-before-SMTP listener (issue 7): placeholder surface, filled in by the POP3 work. */
export { PopGrants, type PopGrant } from './grants.js';
