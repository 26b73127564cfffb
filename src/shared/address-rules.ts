/** Moved to devices/address-patterns.ts (the device rulebook); kept so existing imports keep working. */
export { type AddressRule, addressTrick, parseAddressRule } from '../devices/address-patterns.js';
